//! Values shared by the actors, the HTTP layer and the files under the data directory.

use std::fmt;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Ticker as the mesh uses it: upper case, as given by the price file or configuration.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Symbol(pub String);

impl Symbol {
    pub fn new(text: impl Into<String>) -> Self {
        Symbol(text.into().to_uppercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Crypto pairs trade every day in UTC; the rest are US equities.
    pub fn is_crypto(&self) -> bool {
        let s = self.0.as_str();
        s.ends_with("-USD") || s.ends_with("-USDT") || s.ends_with("USDT")
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Source of a run's prices, chosen once per run and never mixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarketSource {
    Sim,
    Replay,
    Live,
}

impl MarketSource {
    pub fn as_str(self) -> &'static str {
        match self {
            MarketSource::Sim => "sim",
            MarketSource::Replay => "replay",
            MarketSource::Live => "live",
        }
    }
}

impl fmt::Display for MarketSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One OHLC bar. `time` is the bar's timestamp in UTC; a date-only bar is stamped at 00:00Z.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub symbol: Symbol,
    pub time: DateTime<Utc>,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub volume: Option<Decimal>,
}

/// Age class of a cached quote, decided by its age alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Freshness {
    /// Age at most `max_age`.
    Fresh,
    /// Age at most `stale_cap`.
    Stale,
    /// Older than `stale_cap`; not served as a price.
    Expired,
}

impl Freshness {
    pub fn as_str(self) -> &'static str {
        match self {
            Freshness::Fresh => "fresh",
            Freshness::Stale => "stale",
            Freshness::Expired => "expired",
        }
    }
}

/// A price observation for one symbol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    pub symbol: Symbol,
    /// Mid of a valid bid and ask, else the last trade; for a bar, its close.
    pub price: Decimal,
    pub bid: Option<Decimal>,
    pub ask: Option<Decimal>,
    /// Price of the first trade of the bar this quote closes: the fill price of orders
    /// decided on the previous step. Equal to `price` for sim ticks and live quotes.
    pub open: Decimal,
    /// `sim`, `replay` or a provider id.
    pub source: String,
    pub exchange_time: DateTime<Utc>,
    /// Mesh-clock time at which the quote entered the cache.
    pub fetched_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }

    pub fn parse(text: &str) -> Option<Side> {
        match text {
            "buy" => Some(Side::Buy),
            "sell" => Some(Side::Sell),
            _ => None,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order decided by a strategy, before the risk gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderRequest {
    /// Deterministic id: a hash of strategy, symbol, signal time and side (at most 48 chars).
    pub client_order_id: String,
    pub strategy: String,
    pub symbol: Symbol,
    pub side: Side,
    pub qty: Decimal,
    pub signal_time: DateTime<Utc>,
    /// Price the decision was made on; the risk gate values the order with it.
    pub reference_price: Decimal,
}

/// One execution of a whole order by the paper broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    pub timestamp: DateTime<Utc>,
    pub client_order_id: String,
    pub symbol: Symbol,
    pub side: Side,
    pub qty: Decimal,
    pub price: Decimal,
    pub fee: Decimal,
}

/// Risk-gate mode of the execution router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TradingState {
    /// Every order that passes the limits is accepted.
    Active,
    /// Only orders that shrink a position are accepted.
    Reducing,
    /// No order is accepted.
    Halted,
}

impl TradingState {
    pub fn as_str(self) -> &'static str {
        match self {
            TradingState::Active => "active",
            TradingState::Reducing => "reducing",
            TradingState::Halted => "halted",
        }
    }
}

/// An open position as the HTTP layer and the mirrors show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionView {
    pub symbol: Symbol,
    pub qty: Decimal,
    pub avg_price: Decimal,
    pub market_price: Decimal,
    pub price_time: DateTime<Utc>,
    pub unrealized_pnl: Decimal,
}

/// Marked portfolio at the end of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortfolioView {
    pub time: DateTime<Utc>,
    pub cash: Decimal,
    pub equity: Decimal,
    pub positions_value: Decimal,
    pub realized_pnl: Decimal,
    pub unrealized_pnl: Decimal,
    pub fees: Decimal,
    /// Fraction below the highest equity seen so far (0 at a new high).
    pub drawdown: f64,
    pub trading_state: TradingState,
    pub positions: Vec<PositionView>,
}

/// Output of the orchestrator. Ratios, not money, so `f64`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrainState {
    /// Multiplier on every new position's size, in `[0.05, 1]`.
    pub risk_scaler: f64,
    /// How much the brain trusts its inputs, in `[0, 1]`.
    pub confidence: f64,
    pub updated_at: DateTime<Utc>,
    pub inputs: BrainInputs,
}

/// The values the brain's formula read, with the mesh time each was observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrainInputs {
    pub drawdown: f64,
    /// Annualised standard deviation of step returns of equity; `None` before enough steps.
    pub realized_volatility: Option<f64>,
    /// Share of winning round trips among the recent ones; `None` before the first one.
    pub hit_rate: Option<f64>,
    pub closed_trades: usize,
    pub observed_at: DateTime<Utc>,
}

impl BrainState {
    pub fn neutral(now: DateTime<Utc>) -> Self {
        BrainState {
            risk_scaler: 1.0,
            confidence: 0.0,
            updated_at: now,
            inputs: BrainInputs {
                drawdown: 0.0,
                realized_volatility: None,
                hit_rate: None,
                closed_trades: 0,
                observed_at: now,
            },
        }
    }
}
