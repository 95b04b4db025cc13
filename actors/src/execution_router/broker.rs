//! The internal paper broker: accepted orders wait for the next quote of their symbol and fill
//! whole at its open, with slippage against the order and a fee, both in basis points.

use chrono::{DateTime, Utc};
use neolight_messages::{CancelledOrder, Fill, OrderRequest, Quote, Side, Symbol};
use rust_decimal::Decimal;

use super::risk::Commitments;
use crate::portfolio::{round_money, Portfolio};

const BPS: Decimal = Decimal::from_parts(10_000, 0, 0, false, 0);

#[derive(Debug, Clone)]
pub struct PaperBroker {
    fee_bps: Decimal,
    slippage_bps: Decimal,
    pending: Vec<OrderRequest>,
}

/// Result of one execution pass.
#[derive(Debug, Default)]
pub struct Execution {
    pub fills: Vec<Fill>,
    /// Realised PnL of each sell fill, net of its fee.
    pub round_trip_pnl: Vec<Decimal>,
    pub cancels: Vec<CancelledOrder>,
}

impl PaperBroker {
    pub fn new(fee_bps: Decimal, slippage_bps: Decimal) -> Self {
        PaperBroker { fee_bps, slippage_bps, pending: Vec::new() }
    }

    pub fn submit(&mut self, order: OrderRequest) {
        self.pending.push(order);
    }

    pub fn pending(&self) -> &[OrderRequest] {
        &self.pending
    }

    pub fn has_pending(&self, symbol: &Symbol) -> bool {
        self.pending.iter().any(|o| &o.symbol == symbol)
    }

    pub fn commitments(&self) -> Commitments {
        let mut committed = Commitments::default();
        for order in &self.pending {
            match order.side {
                Side::Buy => {
                    let notional = order.qty * order.reference_price;
                    committed.buy_notional += notional;
                    *committed.buy_notional_by_symbol.entry(order.symbol.clone()).or_default() += notional;
                }
                Side::Sell => {
                    *committed.sell_qty_by_symbol.entry(order.symbol.clone()).or_default() += order.qty;
                }
            }
        }
        committed
    }

    /// Price after slippage against the order.
    pub fn fill_price(&self, side: Side, open: Decimal) -> Decimal {
        let slip = open * self.slippage_bps / BPS;
        match side {
            Side::Buy => round_money(open + slip),
            Side::Sell => round_money(open - slip),
        }
    }

    pub fn fee(&self, qty: Decimal, price: Decimal) -> Decimal {
        round_money(qty * price * self.fee_bps / BPS)
    }

    /// Fills every pending order that has a quote in `quotes` (sorted by symbol) at the
    /// quote's open; orders without a quote this step keep waiting.
    pub fn execute(&mut self, quotes: &[Quote], time: DateTime<Utc>, portfolio: &mut Portfolio) -> Execution {
        let mut execution = Execution::default();
        if self.pending.is_empty() {
            return execution;
        }
        let mut waiting = Vec::new();
        for order in std::mem::take(&mut self.pending) {
            let Ok(index) = quotes.binary_search_by(|q| q.symbol.cmp(&order.symbol)) else {
                waiting.push(order);
                continue;
            };
            let price = self.fill_price(order.side, quotes[index].open);
            let fee = self.fee(order.qty, price);
            if order.side == Side::Buy && order.qty * price + fee > portfolio.cash {
                execution.cancels.push(CancelledOrder {
                    client_order_id: order.client_order_id,
                    reason: format!("insufficient_cash at fill: needs {}, cash is {}", (order.qty * price + fee).round_dp(2), portfolio.cash.round_dp(2)),
                });
                continue;
            }
            let fill = Fill {
                timestamp: time,
                client_order_id: order.client_order_id.clone(),
                symbol: order.symbol.clone(),
                side: order.side,
                qty: order.qty,
                price,
                fee,
            };
            match portfolio.apply_fill(&fill) {
                Ok(realized) => {
                    if fill.side == Side::Sell {
                        execution.round_trip_pnl.push(realized);
                    }
                    execution.fills.push(fill);
                }
                Err(err) => execution.cancels.push(CancelledOrder {
                    client_order_id: order.client_order_id,
                    reason: format!("rejected at fill: {err}"),
                }),
            }
        }
        self.pending = waiting;
        execution
    }

    pub fn cancel_all(&mut self, reason: &str) -> Vec<CancelledOrder> {
        self.pending
            .drain(..)
            .map(|order| CancelledOrder { client_order_id: order.client_order_id, reason: reason.to_string() })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn quote(symbol: &str, open: Decimal, close: Decimal) -> Quote {
        let t = DateTime::from_timestamp(86_400, 0).unwrap();
        Quote {
            symbol: Symbol::new(symbol),
            price: close,
            bid: None,
            ask: None,
            open,
            source: "replay".into(),
            exchange_time: t,
            fetched_at: t,
        }
    }

    fn order(symbol: &str, side: Side, qty: Decimal) -> OrderRequest {
        OrderRequest {
            client_order_id: format!("{symbol}-{side}"),
            strategy: "t".into(),
            symbol: Symbol::new(symbol),
            side,
            qty,
            signal_time: DateTime::from_timestamp(0, 0).unwrap(),
            reference_price: dec!(100),
        }
    }

    #[test]
    fn fills_at_next_open_with_slippage_and_fee() {
        let mut broker = PaperBroker::new(dec!(1), dec!(2));
        let mut portfolio = Portfolio::new(dec!(10000));
        broker.submit(order("AAA", Side::Buy, dec!(10)));
        broker.submit(order("BBB", Side::Buy, dec!(1)));
        let quotes = [quote("AAA", dec!(100), dec!(120))];
        let t = quotes[0].exchange_time;
        let execution = broker.execute(&quotes, t, &mut portfolio);
        assert_eq!(execution.fills.len(), 1);
        let fill = &execution.fills[0];
        assert_eq!(fill.price, dec!(100.02));
        assert_eq!(fill.fee, dec!(0.100020));
        assert_eq!(portfolio.cash, dec!(10000) - dec!(1000.2) - dec!(0.10002));
        assert_eq!(broker.pending().len(), 1, "BBB had no quote and keeps waiting");
    }

    #[test]
    fn buy_without_cash_at_fill_is_cancelled() {
        let mut broker = PaperBroker::new(dec!(0), dec!(0));
        let mut portfolio = Portfolio::new(dec!(50));
        broker.submit(order("AAA", Side::Buy, dec!(1)));
        let quotes = [quote("AAA", dec!(100), dec!(100))];
        let execution = broker.execute(&quotes, quotes[0].exchange_time, &mut portfolio);
        assert!(execution.fills.is_empty());
        assert!(execution.cancels[0].reason.contains("insufficient_cash"));
        assert_eq!(portfolio.cash, dec!(50));
    }
}
