//! Settings the actors read. The binary builds them from flags and environment variables.

use std::time::Duration;

use rust_decimal::Decimal;
use rust_decimal_macros::dec;

use crate::strategies::StrategyKind;

/// Limits of the execution router's risk gate, in account currency.
#[derive(Debug, Clone, PartialEq)]
pub struct RiskLimits {
    /// Largest value one symbol's position may reach after an order.
    pub max_position_notional: Decimal,
    /// Largest sum of the absolute values of all positions after an order.
    pub max_gross_exposure: Decimal,
    /// Loss from the trading day's opening equity at which only reducing orders are accepted.
    pub max_daily_loss: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TradingSettings {
    pub initial_cash: Decimal,
    pub fee_bps: Decimal,
    pub slippage_bps: Decimal,
    /// Value of a new position before the brain's `risk_scaler` is applied.
    pub order_notional: Decimal,
    pub strategy: StrategyKind,
    pub limits: RiskLimits,
    /// A quote is `fresh` up to this age.
    pub max_age: Duration,
    /// A quote is `stale` up to this age and `expired` after it.
    pub stale_cap: Duration,
    /// Live market only: no entry on a quote whose exchange time is older than this, nor
    /// outside the regular session of US equities (09:30-16:00 New York, Monday to Friday).
    pub live_entry: Option<Duration>,
}

impl Default for TradingSettings {
    fn default() -> Self {
        TradingSettings {
            initial_cash: dec!(100000),
            fee_bps: dec!(1),
            slippage_bps: dec!(2),
            order_notional: dec!(10000),
            strategy: StrategyKind::MaCrossover { fast: 10, slow: 30 },
            limits: RiskLimits {
                max_position_notional: dec!(25000),
                max_gross_exposure: dec!(100000),
                max_daily_loss: dec!(5000),
            },
            max_age: Duration::from_secs(60),
            stale_cap: Duration::from_secs(24 * 3600),
            live_entry: None,
        }
    }
}
