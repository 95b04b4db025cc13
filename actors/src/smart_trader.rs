//! `smart_trader`: the trading loop. Each step's quotes go through the active strategy, and
//! the wanted positions become sized orders for the execution router.
//!
//! Sizing: a new position is worth `order_notional × risk_scaler` at the decision price,
//! rounded down to the 1e-8 lot. An exit sells the whole position. A new position is opened
//! only on a `fresh` quote; open positions are managed whatever the quote's age.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::America::New_York;
use neolight_messages::{
    BrainUpdated, Freshness, OrderRequest, OrdersFilled, Quote, QuotesUpdated, Side, SubmitOrders, Symbol,
};
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;
use tracing::{debug, info, warn};

use crate::portfolio::floor_qty;
use crate::quote_service::freshness;
use crate::settings::TradingSettings;
use crate::shared::{AgentState, HeartbeatThrottle, Shared};
use crate::strategies::{client_order_id, SymbolStrategy, Target};
use crate::execution_router::ExecutionRouter;

pub const NAME: &str = "smart_trader";

pub struct SmartTrader {
    settings: TradingSettings,
    strategies: BTreeMap<Symbol, SymbolStrategy>,
    positions: BTreeMap<Symbol, Decimal>,
    /// Accepted orders not yet filled or cancelled, by client order id.
    pending: HashMap<String, Symbol>,
    risk_scaler: f64,
    router: Addr<ExecutionRouter>,
    shared: Arc<Shared>,
    heartbeat: HeartbeatThrottle,
    rejections: u64,
}

impl SmartTrader {
    pub fn new(
        settings: TradingSettings,
        positions: BTreeMap<Symbol, Decimal>,
        router: Addr<ExecutionRouter>,
        shared: Arc<Shared>,
    ) -> Self {
        SmartTrader {
            settings,
            strategies: BTreeMap::new(),
            positions,
            pending: HashMap::new(),
            risk_scaler: 1.0,
            router,
            shared,
            heartbeat: HeartbeatThrottle::default(),
            rejections: 0,
        }
    }

    /// Marks orders accepted before a restart as pending, so their symbols get no second order.
    pub fn with_pending(mut self, orders: &[OrderRequest]) -> Self {
        for order in orders {
            self.pending.insert(order.client_order_id.clone(), order.symbol.clone());
        }
        self
    }

    fn decide(&mut self, msg: &QuotesUpdated) -> Vec<OrderRequest> {
        let strategy_name = self.settings.strategy.name();
        let mut orders = Vec::new();
        for quote in msg.quotes.iter() {
            let kind = self.settings.strategy;
            let strategy = self.strategies.entry(quote.symbol.clone()).or_insert_with(|| kind.build());
            let target = strategy.on_close(quote.price);
            if self.pending.values().any(|s| s == &quote.symbol) {
                continue;
            }
            let held = self.positions.get(&quote.symbol).copied().unwrap_or_default();
            let order = match target {
                Target::Long if held.is_zero() => {
                    if let Err(reason) = entry_allowed(quote, msg.time, &self.settings) {
                        debug!(agent = NAME, symbol = %quote.symbol, %reason, "no entry");
                        continue;
                    }
                    let scaler = Decimal::from_f64(self.risk_scaler).unwrap_or(Decimal::ONE);
                    let qty = floor_qty(self.settings.order_notional * scaler / quote.price);
                    if qty.is_zero() {
                        continue;
                    }
                    (Side::Buy, qty)
                }
                Target::Flat if held > Decimal::ZERO => (Side::Sell, held),
                _ => continue,
            };
            let (side, qty) = order;
            orders.push(OrderRequest {
                client_order_id: client_order_id(strategy_name, &quote.symbol, msg.time, side),
                strategy: strategy_name.to_string(),
                symbol: quote.symbol.clone(),
                side,
                qty,
                signal_time: msg.time,
                reference_price: quote.price,
            });
        }
        orders
    }
}

/// Checks whether `quote` may open a new position at mesh time `now`: it must be `fresh`, and
/// in the live market also pass [`live_entry_allowed`].
pub fn entry_allowed(quote: &Quote, now: DateTime<Utc>, settings: &TradingSettings) -> Result<(), String> {
    let age = freshness(now, quote.fetched_at, settings.max_age, settings.stale_cap);
    if age != Freshness::Fresh {
        return Err(format!("quote is {}", age.as_str()));
    }
    match settings.live_entry {
        Some(max_exchange_age) => live_entry_allowed(&quote.symbol, quote.exchange_time, now, max_exchange_age),
        None => Ok(()),
    }
}

/// Checks whether a live quote may open a position: its exchange time must be recent, and US
/// equities must be inside the regular session (09:30-16:00 New York, Monday to Friday).
/// NOTE: exchange holidays are not known, so a holiday counts as a trading day.
pub fn live_entry_allowed(
    symbol: &Symbol,
    exchange_time: DateTime<Utc>,
    now: DateTime<Utc>,
    max_exchange_age: std::time::Duration,
) -> Result<(), String> {
    let age = (now - exchange_time).to_std().unwrap_or_default();
    if age > max_exchange_age {
        return Err(format!("exchange time {exchange_time} is {}s old (limit {}s)", age.as_secs(), max_exchange_age.as_secs()));
    }
    if symbol.is_crypto() {
        return Ok(());
    }
    let local = exchange_time.with_timezone(&New_York);
    let minutes = local.hour() * 60 + local.minute();
    let weekday = local.weekday().num_days_from_monday() < 5;
    if !weekday || !(9 * 60 + 30..16 * 60).contains(&minutes) {
        return Err(format!("exchange time {exchange_time} is outside the regular session"));
    }
    Ok(())
}

impl Actor for SmartTrader {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        self.shared.set_agent_state(NAME, AgentState::Running);
        info!(agent = NAME, strategy = self.settings.strategy.name(), open_positions = self.positions.len(), "started");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.shared.set_agent_state(NAME, AgentState::Stopped);
        info!(agent = NAME, rejections = self.rejections, "stopped");
    }
}

impl Handler<QuotesUpdated> for SmartTrader {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: QuotesUpdated, _ctx: &mut Self::Context) -> Self::Result {
        if self.heartbeat.due() {
            self.shared.heartbeat(NAME);
        }
        let orders = self.decide(&msg);
        if orders.is_empty() {
            return Box::pin(fut::ready(()));
        }
        let symbols: HashMap<String, Symbol> =
            orders.iter().map(|o| (o.client_order_id.clone(), o.symbol.clone())).collect();
        let submit = SubmitOrders { time: msg.time, orders };
        Box::pin(self.router.send(submit).into_actor(self).map(move |result, act, _ctx| {
            let decisions = match result {
                Ok(decisions) => decisions,
                Err(err) => {
                    warn!(agent = NAME, error = %err, "execution_router did not take the orders");
                    return;
                }
            };
            for decision in decisions {
                match decision.rejected {
                    None => {
                        if let Some(symbol) = symbols.get(&decision.client_order_id) {
                            act.pending.insert(decision.client_order_id, symbol.clone());
                        }
                    }
                    Some(_) => act.rejections += 1,
                }
            }
        }))
    }
}

impl Handler<OrdersFilled> for SmartTrader {
    type Result = ();

    fn handle(&mut self, msg: OrdersFilled, _ctx: &mut Self::Context) {
        for fill in msg.fills {
            self.pending.remove(&fill.client_order_id);
            let held = self.positions.entry(fill.symbol.clone()).or_default();
            match fill.side {
                Side::Buy => *held += fill.qty,
                Side::Sell => *held -= fill.qty,
            }
            if held.is_zero() {
                self.positions.remove(&fill.symbol);
            }
        }
        for cancel in msg.cancelled {
            self.pending.remove(&cancel.client_order_id);
        }
    }
}

impl Handler<BrainUpdated> for SmartTrader {
    type Result = ();

    fn handle(&mut self, msg: BrainUpdated, _ctx: &mut Self::Context) {
        self.risk_scaler = msg.brain.risk_scaler;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn quote_fetched(at: &str) -> Quote {
        Quote {
            symbol: Symbol::new("SPY"),
            price: rust_decimal::Decimal::ONE_HUNDRED,
            bid: None,
            ask: None,
            open: rust_decimal::Decimal::ONE_HUNDRED,
            source: "finnhub".into(),
            exchange_time: self::at(at),
            fetched_at: self::at(at),
        }
    }

    #[test]
    fn entry_needs_fresh_quote() {
        let settings = TradingSettings { max_age: Duration::from_secs(60), stale_cap: Duration::from_secs(3600), ..TradingSettings::default() };
        let quote = quote_fetched("2024-05-14T15:00:00Z");
        assert!(entry_allowed(&quote, at("2024-05-14T15:00:30Z"), &settings).is_ok());
        let stale = entry_allowed(&quote, at("2024-05-14T15:05:00Z"), &settings).unwrap_err();
        assert_eq!(stale, "quote is stale");
        let expired = entry_allowed(&quote, at("2024-05-14T17:00:00Z"), &settings).unwrap_err();
        assert_eq!(expired, "quote is expired");
    }

    #[test]
    fn live_entry_rules() {
        let spy = Symbol::new("SPY");
        let btc = Symbol::new("BTC-USD");
        let limit = Duration::from_secs(15 * 60);
        // 2024-05-14 is a Tuesday; 15:00Z is 11:00 in New York.
        assert!(live_entry_allowed(&spy, at("2024-05-14T15:00:00Z"), at("2024-05-14T15:05:00Z"), limit).is_ok());
        let old = live_entry_allowed(&spy, at("2024-05-14T15:00:00Z"), at("2024-05-14T15:20:00Z"), limit);
        assert!(old.unwrap_err().contains("old"));
        let night = live_entry_allowed(&spy, at("2024-05-14T02:00:00Z"), at("2024-05-14T02:01:00Z"), limit);
        assert!(night.unwrap_err().contains("regular session"));
        let saturday = live_entry_allowed(&spy, at("2024-05-18T15:00:00Z"), at("2024-05-18T15:01:00Z"), limit);
        assert!(saturday.is_err());
        assert!(live_entry_allowed(&btc, at("2024-05-18T02:00:00Z"), at("2024-05-18T02:01:00Z"), limit).is_ok());
    }
}
