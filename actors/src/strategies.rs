//! Trading strategies as plain per-symbol state machines, and deterministic client order ids.
//!
//! A strategy receives one closing price per step and returns the position it wants: long or flat.
//! It reads no later price than the one it is given, so a decision at bar t uses data up to t.
//! Indicator arithmetic is `f64`, because it only decides a direction; money stays decimal.

use std::collections::VecDeque;
use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use neolight_messages::{Side, Symbol};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

/// Position a strategy wants after a price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Long,
    Flat,
    /// Not enough history yet, or no reason to change.
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StrategyKind {
    /// Long while the fast simple moving average is above the slow one.
    MaCrossover { fast: usize, slow: usize },
    /// Long after a close `entry_z` standard deviations below its moving average; flat again
    /// once the close is back above the average.
    MeanReversion { window: usize, entry_z: f64 },
}

impl StrategyKind {
    pub fn name(&self) -> &'static str {
        match self {
            StrategyKind::MaCrossover { .. } => "ma_crossover",
            StrategyKind::MeanReversion { .. } => "mean_reversion",
        }
    }

    pub fn build(&self) -> SymbolStrategy {
        let window = match *self {
            StrategyKind::MaCrossover { slow, .. } => slow,
            StrategyKind::MeanReversion { window, .. } => window,
        };
        SymbolStrategy { kind: *self, closes: VecDeque::with_capacity(window + 1), sum: 0.0, sum_sq: 0.0, window }
    }
}

/// One strategy's rolling state for one symbol.
#[derive(Debug, Clone)]
pub struct SymbolStrategy {
    kind: StrategyKind,
    closes: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
    window: usize,
}

impl SymbolStrategy {
    /// Feeds the close of the current step and returns the wanted position.
    pub fn on_close(&mut self, close: Decimal) -> Target {
        let Some(price) = close.to_f64() else { return Target::Keep };
        self.closes.push_back(price);
        self.sum += price;
        self.sum_sq += price * price;
        if self.closes.len() > self.window {
            let old = self.closes.pop_front().expect("length exceeds window");
            self.sum -= old;
            self.sum_sq -= old * old;
        }
        if self.closes.len() < self.window {
            return Target::Keep;
        }
        match self.kind {
            StrategyKind::MaCrossover { fast, slow } => {
                let fast_mean = self.closes.iter().rev().take(fast).sum::<f64>() / fast as f64;
                let slow_mean = self.sum / slow as f64;
                if fast_mean > slow_mean {
                    Target::Long
                } else if fast_mean < slow_mean {
                    Target::Flat
                } else {
                    Target::Keep
                }
            }
            StrategyKind::MeanReversion { window, entry_z } => {
                let n = window as f64;
                let mean = self.sum / n;
                let variance = (self.sum_sq / n - mean * mean).max(0.0);
                let std = variance.sqrt();
                if std <= f64::EPSILON * mean.abs() {
                    return Target::Keep;
                }
                let z = (price - mean) / std;
                if z <= -entry_z {
                    Target::Long
                } else if z >= 0.0 {
                    Target::Flat
                } else {
                    Target::Keep
                }
            }
        }
    }
}

/// Deterministic client order id: `nl-` and 40 hex digits of the SHA-256 of strategy, symbol,
/// signal time and side. 43 characters, under Alpaca's 48-character limit.
pub fn client_order_id(strategy: &str, symbol: &Symbol, signal_time: DateTime<Utc>, side: Side) -> String {
    let mut hasher = Sha256::new();
    hasher.update(strategy.as_bytes());
    hasher.update(b"|");
    hasher.update(symbol.as_str().as_bytes());
    hasher.update(b"|");
    hasher.update(signal_time.to_rfc3339_opts(SecondsFormat::Nanos, true).as_bytes());
    hasher.update(b"|");
    hasher.update(side.as_str().as_bytes());
    let digest = hasher.finalize();
    let mut id = String::with_capacity(43);
    id.push_str("nl-");
    for byte in &digest[..20] {
        write!(id, "{byte:02x}").expect("writing to a String cannot fail");
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn crossover_goes_long_on_rising_prices() {
        let mut s = StrategyKind::MaCrossover { fast: 2, slow: 4 }.build();
        let targets: Vec<Target> =
            [dec!(10), dec!(10), dec!(10), dec!(11), dec!(12), dec!(9), dec!(8)].into_iter().map(|p| s.on_close(p)).collect();
        assert_eq!(&targets[..3], &[Target::Keep, Target::Keep, Target::Keep]);
        assert_eq!(targets[3], Target::Long);
        assert_eq!(targets[6], Target::Flat);
    }

    #[test]
    fn mean_reversion_dip_and_exit() {
        let mut s = StrategyKind::MeanReversion { window: 5, entry_z: 1.5 }.build();
        for p in [dec!(100), dec!(101), dec!(100), dec!(101)] {
            assert_eq!(s.on_close(p), Target::Keep);
        }
        assert_eq!(s.on_close(dec!(90)), Target::Long);
        assert_eq!(s.on_close(dec!(105)), Target::Flat);
    }

    #[test]
    fn decision_ignores_later_prices() {
        // Two histories equal up to bar t give the same decision at t, whatever follows.
        let prefix = [dec!(10), dec!(11), dec!(12), dec!(11), dec!(13)];
        let mut a = StrategyKind::MaCrossover { fast: 2, slow: 3 }.build();
        let mut b = StrategyKind::MaCrossover { fast: 2, slow: 3 }.build();
        let da: Vec<Target> = prefix.iter().map(|p| a.on_close(*p)).collect();
        let db: Vec<Target> = prefix.iter().map(|p| b.on_close(*p)).collect();
        assert_eq!(da, db);
    }

    #[test]
    fn client_order_id_is_stable_and_short() {
        let t = DateTime::from_timestamp(1_500_000_000, 0).unwrap();
        let a = client_order_id("ma_crossover", &Symbol::new("SPY"), t, Side::Buy);
        let b = client_order_id("ma_crossover", &Symbol::new("SPY"), t, Side::Buy);
        let c = client_order_id("ma_crossover", &Symbol::new("SPY"), t, Side::Sell);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.len() <= 48);
    }
}
