//! Cash and position accounting with exact decimals.
//!
//! Positions carry their cost basis rather than an average price, so that
//! `cash + Σ qty × mark == initial_cash + realized_pnl + unrealized_pnl` is exact after any
//! sequence of fills: a partial exit removes a rounded share of the cost basis, and that same
//! amount leaves `unrealized` and enters `realized`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use neolight_messages::{Fill, PortfolioView, PositionView, Side, Symbol, TradingState};
use rust_decimal::{Decimal, RoundingStrategy};

/// Decimal places kept for quantities, prices, fees and cost bases.
pub const SCALE: u32 = 8;

pub fn round_money(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(SCALE, RoundingStrategy::MidpointNearestEven)
}

/// Rounds a quantity down to the 1e-8 lot, so an order never spends more than it was sized for.
pub fn floor_qty(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(SCALE, RoundingStrategy::ToZero)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub qty: Decimal,
    /// Cost of the open quantity, fees excluded.
    pub cost_basis: Decimal,
    pub last_price: Decimal,
    pub last_price_time: DateTime<Utc>,
}

impl Position {
    pub fn avg_price(&self) -> Decimal {
        if self.qty.is_zero() {
            Decimal::ZERO
        } else {
            round_money(self.cost_basis / self.qty)
        }
    }

    pub fn market_value(&self) -> Decimal {
        self.qty * self.last_price
    }
}

/// Reason a fill cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountingError {
    #[error("fill {client_order_id} sells {qty} {symbol} but the position holds {held}")]
    Oversold { client_order_id: String, symbol: Symbol, qty: Decimal, held: Decimal },
    #[error("fill {client_order_id} has a non-positive quantity or price")]
    NonPositive { client_order_id: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Portfolio {
    pub initial_cash: Decimal,
    pub cash: Decimal,
    pub positions: BTreeMap<Symbol, Position>,
    /// Net of every fee paid, so a buy alone lowers it by its fee.
    pub realized_pnl: Decimal,
    pub fees: Decimal,
    pub fill_count: u64,
    pub peak_equity: Decimal,
}

impl Portfolio {
    pub fn new(initial_cash: Decimal) -> Self {
        Portfolio {
            initial_cash,
            cash: initial_cash,
            positions: BTreeMap::new(),
            realized_pnl: Decimal::ZERO,
            fees: Decimal::ZERO,
            fill_count: 0,
            peak_equity: initial_cash,
        }
    }

    /// Rebuilds a portfolio by applying `fills` in order.
    pub fn from_fills<'a>(
        initial_cash: Decimal,
        fills: impl IntoIterator<Item = &'a Fill>,
    ) -> Result<Self, AccountingError> {
        let mut portfolio = Portfolio::new(initial_cash);
        for fill in fills {
            portfolio.apply_fill(fill)?;
        }
        Ok(portfolio)
    }

    pub fn qty(&self, symbol: &Symbol) -> Decimal {
        self.positions.get(symbol).map_or(Decimal::ZERO, |p| p.qty)
    }

    /// Applies one fill and returns the realised PnL it caused (net of its fee).
    pub fn apply_fill(&mut self, fill: &Fill) -> Result<Decimal, AccountingError> {
        if fill.qty <= Decimal::ZERO || fill.price <= Decimal::ZERO {
            return Err(AccountingError::NonPositive { client_order_id: fill.client_order_id.clone() });
        }
        let notional = fill.qty * fill.price;
        let realized = match fill.side {
            Side::Buy => {
                let position = self.positions.entry(fill.symbol.clone()).or_insert(Position {
                    qty: Decimal::ZERO,
                    cost_basis: Decimal::ZERO,
                    last_price: fill.price,
                    last_price_time: fill.timestamp,
                });
                position.qty += fill.qty;
                position.cost_basis += notional;
                position.last_price = fill.price;
                position.last_price_time = fill.timestamp;
                self.cash -= notional + fill.fee;
                -fill.fee
            }
            Side::Sell => {
                let held = self.qty(&fill.symbol);
                if fill.qty > held {
                    return Err(AccountingError::Oversold {
                        client_order_id: fill.client_order_id.clone(),
                        symbol: fill.symbol.clone(),
                        qty: fill.qty,
                        held,
                    });
                }
                let position = self.positions.get_mut(&fill.symbol).expect("held > 0 implies a position");
                let removed_cost = if fill.qty == position.qty {
                    position.cost_basis
                } else {
                    round_money(position.cost_basis * fill.qty / position.qty)
                };
                position.qty -= fill.qty;
                position.cost_basis -= removed_cost;
                position.last_price = fill.price;
                position.last_price_time = fill.timestamp;
                if position.qty.is_zero() {
                    self.positions.remove(&fill.symbol);
                }
                self.cash += notional - fill.fee;
                notional - removed_cost - fill.fee
            }
        };
        self.realized_pnl += realized;
        self.fees += fill.fee;
        self.fill_count += 1;
        Ok(realized)
    }

    /// Marks a position at a newer price; symbols without a position are ignored.
    pub fn mark(&mut self, symbol: &Symbol, price: Decimal, time: DateTime<Utc>) {
        if let Some(position) = self.positions.get_mut(symbol) {
            if time >= position.last_price_time {
                position.last_price = price;
                position.last_price_time = time;
            }
        }
    }

    pub fn positions_value(&self) -> Decimal {
        self.positions.values().map(Position::market_value).sum()
    }

    pub fn gross_exposure(&self) -> Decimal {
        self.positions.values().map(|p| p.market_value().abs()).sum()
    }

    pub fn equity(&self) -> Decimal {
        self.cash + self.positions_value()
    }

    pub fn unrealized_pnl(&self) -> Decimal {
        self.positions.values().map(|p| p.market_value() - p.cost_basis).sum()
    }

    /// Raises the high-water mark to the current equity and returns the drawdown below it.
    pub fn update_drawdown(&mut self) -> f64 {
        let equity = self.equity();
        if equity > self.peak_equity {
            self.peak_equity = equity;
        }
        drawdown(self.peak_equity, equity)
    }

    pub fn view(&self, time: DateTime<Utc>, trading_state: TradingState) -> PortfolioView {
        let positions = self
            .positions
            .iter()
            .map(|(symbol, p)| PositionView {
                symbol: symbol.clone(),
                qty: p.qty,
                avg_price: p.avg_price(),
                market_price: p.last_price,
                price_time: p.last_price_time,
                unrealized_pnl: p.market_value() - p.cost_basis,
            })
            .collect();
        PortfolioView {
            time,
            cash: self.cash,
            equity: self.equity(),
            positions_value: self.positions_value(),
            realized_pnl: self.realized_pnl,
            unrealized_pnl: self.unrealized_pnl(),
            fees: self.fees,
            drawdown: drawdown(self.peak_equity, self.equity()),
            trading_state,
            positions,
        }
    }

    /// Compares cash and positions with another portfolio; returns the first difference.
    pub fn difference(&self, other: &Portfolio) -> Option<String> {
        if self.cash != other.cash {
            return Some(format!("cash {} vs {}", self.cash, other.cash));
        }
        for (symbol, position) in &self.positions {
            let other_qty = other.qty(symbol);
            if position.qty != other_qty {
                return Some(format!("{symbol} quantity {} vs {}", position.qty, other_qty));
            }
        }
        for (symbol, position) in &other.positions {
            if !self.positions.contains_key(symbol) {
                return Some(format!("{symbol} quantity 0 vs {}", position.qty));
            }
        }
        None
    }
}

pub fn drawdown(peak: Decimal, equity: Decimal) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    if peak <= Decimal::ZERO || equity >= peak {
        return 0.0;
    }
    ((peak - equity) / peak).to_f64().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn fill(id: &str, side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> Fill {
        Fill {
            timestamp: DateTime::from_timestamp(1_600_000_000, 0).unwrap(),
            client_order_id: id.to_string(),
            symbol: Symbol::new("SPY"),
            side,
            qty,
            price,
            fee,
        }
    }

    fn assert_identity(p: &Portfolio) {
        assert_eq!(p.cash + p.positions_value(), p.equity());
        assert_eq!(p.initial_cash + p.realized_pnl + p.unrealized_pnl(), p.equity(), "{p:?}");
    }

    #[test]
    fn round_trip_at_one_price_loses_the_fees() {
        let mut p = Portfolio::new(dec!(10000));
        p.apply_fill(&fill("a", Side::Buy, dec!(3), dec!(100), dec!(0.03))).unwrap();
        p.apply_fill(&fill("b", Side::Sell, dec!(3), dec!(100), dec!(0.03))).unwrap();
        assert_eq!(p.cash, dec!(9999.94));
        assert_eq!(p.realized_pnl, dec!(-0.06));
        assert!(p.positions.is_empty());
    }

    #[test]
    fn partial_exit_keeps_average_price() {
        let mut p = Portfolio::new(dec!(10000));
        p.apply_fill(&fill("a", Side::Buy, dec!(3), dec!(100), dec!(0))).unwrap();
        let realized = p.apply_fill(&fill("b", Side::Sell, dec!(1), dec!(110), dec!(0))).unwrap();
        assert_eq!(realized, dec!(10));
        assert_eq!(p.qty(&Symbol::new("SPY")), dec!(2));
        assert_eq!(p.positions[&Symbol::new("SPY")].avg_price(), dec!(100));
        assert_identity(&p);
    }

    #[test]
    fn oversell_is_rejected() {
        let mut p = Portfolio::new(dec!(1000));
        p.apply_fill(&fill("a", Side::Buy, dec!(1), dec!(10), dec!(0))).unwrap();
        let err = p.apply_fill(&fill("b", Side::Sell, dec!(2), dec!(10), dec!(0))).unwrap_err();
        assert!(err.to_string().contains("holds 1"), "{err}");
        assert_eq!(p.qty(&Symbol::new("SPY")), dec!(1));
    }

    fn decimal(max: i64, scale: u32) -> impl Strategy<Value = Decimal> {
        (1..max).prop_map(move |n| Decimal::new(n, scale))
    }

    proptest! {
        #[test]
        fn buy_then_sell_same_price_loses_exactly_fees(
            qty in decimal(10_000_000_000, 8),
            price in decimal(100_000_000, 4),
            fee_a in decimal(1_000_000, 8),
            fee_b in decimal(1_000_000, 8),
        ) {
            let mut p = Portfolio::new(dec!(1000000));
            p.apply_fill(&fill("a", Side::Buy, qty, price, fee_a)).unwrap();
            p.apply_fill(&fill("b", Side::Sell, qty, price, fee_b)).unwrap();
            prop_assert_eq!(p.cash, dec!(1000000) - fee_a - fee_b);
            prop_assert_eq!(p.realized_pnl, -(fee_a + fee_b));
            prop_assert!(p.positions.is_empty());
        }

        #[test]
        fn equity_identity_after_any_fills(
            steps in prop::collection::vec((any::<bool>(), 1u32..100, decimal(1_000_000, 2), 0u32..5, any::<bool>()), 1..40)
        ) {
            let mut p = Portfolio::new(dec!(100000));
            for (i, (buy, fraction, price, fee_cents, mark)) in steps.into_iter().enumerate() {
                let fee = Decimal::new(fee_cents as i64, 2);
                let held = p.qty(&Symbol::new("SPY"));
                let f = if buy || held.is_zero() {
                    fill(&i.to_string(), Side::Buy, Decimal::new(fraction as i64, 3), price, fee)
                } else {
                    // Partial exits of an arbitrary share, down to the 1e-8 lot.
                    let qty = floor_qty(held * Decimal::new(fraction as i64, 2)).max(dec!(0.00000001)).min(held);
                    fill(&i.to_string(), Side::Sell, qty, price, fee)
                };
                p.apply_fill(&f).unwrap();
                if mark {
                    p.mark(&Symbol::new("SPY"), price + dec!(1.5), f.timestamp);
                }
                assert_identity(&p);
            }
        }
    }
}
