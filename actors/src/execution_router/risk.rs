//! The one risk gate every order passes, and the trading-day loss tracker.

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use chrono_tz::America::New_York;
use neolight_messages::{OrderRequest, Side, Symbol, TradingState};
use rust_decimal::Decimal;

use crate::portfolio::Portfolio;
use crate::settings::RiskLimits;

/// Value already committed by accepted orders that the broker has not executed yet.
#[derive(Debug, Clone, Default)]
pub struct Commitments {
    pub buy_notional: Decimal,
    pub buy_notional_by_symbol: std::collections::BTreeMap<Symbol, Decimal>,
    pub sell_qty_by_symbol: std::collections::BTreeMap<Symbol, Decimal>,
}

/// Checks one order against the trading state, the limits and the cash. `Err` contains the reason.
pub fn check_order(
    order: &OrderRequest,
    state: TradingState,
    limits: &RiskLimits,
    portfolio: &Portfolio,
    committed: &Commitments,
    cost_bps: Decimal,
) -> Result<(), String> {
    let symbol = &order.symbol;
    if order.qty <= Decimal::ZERO || order.reference_price <= Decimal::ZERO {
        return Err(format!("invalid order: quantity {} at price {}", order.qty, order.reference_price));
    }
    let held = portfolio.qty(symbol);
    match order.side {
        Side::Sell => {
            if state == TradingState::Halted {
                return Err("trading is halted: no order is accepted".to_string());
            }
            let pending_sells = committed.sell_qty_by_symbol.get(symbol).copied().unwrap_or_default();
            if order.qty > held - pending_sells {
                return Err(format!(
                    "long_only: sell of {} {symbol} exceeds the unsold position of {}",
                    order.qty,
                    held - pending_sells
                ));
            }
            Ok(())
        }
        Side::Buy => {
            match state {
                TradingState::Halted => return Err("trading is halted: no order is accepted".to_string()),
                TradingState::Reducing => {
                    return Err("trading is reducing: only orders that shrink a position are accepted".to_string())
                }
                TradingState::Active => {}
            }
            let notional = order.qty * order.reference_price;
            let price = order.reference_price;
            let position_after = held * price
                + committed.buy_notional_by_symbol.get(symbol).copied().unwrap_or_default()
                + notional;
            if position_after > limits.max_position_notional {
                return Err(format!(
                    "max_position_notional: {symbol} would reach {} (limit {})",
                    position_after.round_dp(2),
                    limits.max_position_notional
                ));
            }
            let gross_after = portfolio.gross_exposure() + committed.buy_notional + notional;
            if gross_after > limits.max_gross_exposure {
                return Err(format!(
                    "max_gross_exposure: gross exposure would reach {} (limit {})",
                    gross_after.round_dp(2),
                    limits.max_gross_exposure
                ));
            }
            let cash_needed = (committed.buy_notional + notional) * (Decimal::ONE + cost_bps / Decimal::from(10_000));
            if cash_needed > portfolio.cash {
                return Err(format!(
                    "insufficient_cash: order needs {} with fees and slippage, cash is {}",
                    cash_needed.round_dp(2),
                    portfolio.cash.round_dp(2)
                ));
            }
            Ok(())
        }
    }
}

/// Trading day of a time: the New York calendar day for US equities and the UTC day for crypto
/// and sim. A bar stamped exactly 00:00:00Z is a date-only bar, and its day is that date.
pub fn trading_day(symbol_is_crypto: bool, time: DateTime<Utc>) -> NaiveDate {
    let date_only = time.num_seconds_from_midnight() == 0 && time.nanosecond() == 0;
    if symbol_is_crypto || date_only {
        time.date_naive()
    } else {
        time.with_timezone(&New_York).date_naive()
    }
}

/// Tracks equity since the start of the trading day and flips to `Reducing` past the daily loss.
#[derive(Debug, Clone)]
pub struct DailyLoss {
    day: Option<NaiveDate>,
    day_start_equity: Decimal,
    pub breached: bool,
}

impl DailyLoss {
    pub fn new() -> Self {
        DailyLoss { day: None, day_start_equity: Decimal::ZERO, breached: false }
    }

    /// Starts a new day when `day` differs from the current one, using the equity before it.
    pub fn roll(&mut self, day: NaiveDate, equity_before: Decimal) {
        if self.day != Some(day) {
            self.day = Some(day);
            self.day_start_equity = equity_before;
            self.breached = false;
        }
    }

    /// Updates with the marked equity; returns true when the limit was crossed just now.
    pub fn observe(&mut self, equity: Decimal, max_daily_loss: Decimal) -> bool {
        let loss = self.day_start_equity - equity;
        if !self.breached && self.day.is_some() && loss >= max_daily_loss {
            self.breached = true;
            return true;
        }
        false
    }

    pub fn loss(&self, equity: Decimal) -> Decimal {
        self.day_start_equity - equity
    }
}

impl Default for DailyLoss {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neolight_messages::Fill;
    use rust_decimal_macros::dec;

    fn limits() -> RiskLimits {
        RiskLimits { max_position_notional: dec!(1000), max_gross_exposure: dec!(1500), max_daily_loss: dec!(100) }
    }

    fn order(symbol: &str, side: Side, qty: Decimal, price: Decimal) -> OrderRequest {
        OrderRequest {
            client_order_id: "x".into(),
            strategy: "t".into(),
            symbol: Symbol::new(symbol),
            side,
            qty,
            signal_time: DateTime::from_timestamp(0, 0).unwrap(),
            reference_price: price,
        }
    }

    fn check(o: &OrderRequest, state: TradingState, p: &Portfolio) -> Result<(), String> {
        check_order(o, state, &limits(), p, &Commitments::default(), dec!(3))
    }

    #[test]
    fn gate_cases() {
        let mut p = Portfolio::new(dec!(1500));
        p.apply_fill(&Fill {
            timestamp: DateTime::from_timestamp(0, 0).unwrap(),
            client_order_id: "f".into(),
            symbol: Symbol::new("AAA"),
            side: Side::Buy,
            qty: dec!(8),
            price: dec!(100),
            fee: dec!(0),
        })
        .unwrap();
        let cases = [
            (order("AAA", Side::Buy, dec!(1), dec!(100)), TradingState::Active, None),
            (order("AAA", Side::Buy, dec!(3), dec!(100)), TradingState::Active, Some("max_position_notional")),
            (order("BBB", Side::Buy, dec!(8), dec!(100)), TradingState::Active, Some("max_gross_exposure")),
            (order("BBB", Side::Buy, dec!(7), dec!(100)), TradingState::Active, Some("insufficient_cash")),
            (order("AAA", Side::Buy, dec!(1), dec!(100)), TradingState::Reducing, Some("reducing")),
            (order("AAA", Side::Sell, dec!(8), dec!(100)), TradingState::Reducing, None),
            (order("AAA", Side::Sell, dec!(9), dec!(100)), TradingState::Active, Some("long_only")),
            (order("AAA", Side::Sell, dec!(1), dec!(100)), TradingState::Halted, Some("halted")),
            (order("AAA", Side::Buy, dec!(0), dec!(100)), TradingState::Active, Some("invalid order")),
        ];
        for (o, state, expected) in cases {
            let result = check(&o, state, &p);
            match expected {
                None => assert!(result.is_ok(), "{o:?} in {state:?}: {result:?}"),
                Some(reason) => {
                    let err = result.expect_err(reason);
                    assert!(err.contains(reason), "{err} should contain {reason}");
                }
            }
        }
    }

    #[test]
    fn daily_loss_breach_resets_next_day() {
        let mut d = DailyLoss::new();
        let day1 = NaiveDate::from_ymd_opt(2020, 1, 2).unwrap();
        d.roll(day1, dec!(1000));
        assert!(!d.observe(dec!(950), dec!(100)));
        assert!(d.observe(dec!(899), dec!(100)));
        assert!(d.breached);
        d.roll(day1.succ_opt().unwrap(), dec!(899));
        assert!(!d.breached);
    }

    #[test]
    fn trading_day_uses_new_york_for_intraday_equities() {
        let t = DateTime::parse_from_rfc3339("2020-03-03T02:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(trading_day(false, t), NaiveDate::from_ymd_opt(2020, 3, 2).unwrap());
        assert_eq!(trading_day(true, t), NaiveDate::from_ymd_opt(2020, 3, 3).unwrap());
        let date_only = DateTime::parse_from_rfc3339("2020-03-03T00:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(trading_day(false, date_only), NaiveDate::from_ymd_opt(2020, 3, 3).unwrap());
    }
}
