//! The orchestrator's formula: `risk_scaler` and `confidence` from drawdown, realised volatility
//! and the recent hit rate.
//!
//! ```text
//! dd_factor   = 1 - 0.8 × min(drawdown / 0.20, 1)          1 at a new high, 0.2 at 20 % down
//! vol_factor  = min(1, 0.20 / realized_volatility)          1 until 10 returns are known
//! hit_factor  = 0.5 + hit_rate                              1 until 5 round trips are known
//! risk_scaler = clamp(dd_factor × vol_factor × hit_factor, 0.05, 1)
//! confidence  = min(1, round_trips / 20) × (0.5 × hit_rate + 0.5 × (1 - min(drawdown / 0.20, 1)))
//! ```
//!
//! Realised volatility is the standard deviation of the last 60 step returns of equity,
//! annualised with the mean step length, so daily bars and sim ticks are on one scale.
//! The hit rate is the share of the last 20 round trips (sell fills) with a positive net PnL.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use neolight_messages::{BrainInputs, BrainState};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

const RETURN_WINDOW: usize = 60;
const MIN_RETURNS: usize = 10;
const ROUND_TRIP_WINDOW: usize = 20;
const MIN_ROUND_TRIPS: usize = 5;
const DRAWDOWN_REFERENCE: f64 = 0.20;
const TARGET_VOLATILITY: f64 = 0.20;
const SECONDS_PER_YEAR: f64 = 365.25 * 24.0 * 3600.0;

#[derive(Debug, Clone, Default)]
pub struct Brain {
    /// (time, equity) of recent steps, oldest first.
    equity: VecDeque<(DateTime<Utc>, f64)>,
    round_trips: VecDeque<bool>,
    closed_trades: usize,
}

impl Brain {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one step and returns the new brain state.
    pub fn observe(&mut self, time: DateTime<Utc>, equity: Decimal, drawdown: f64, round_trip_pnl: &[Decimal]) -> BrainState {
        if self.equity.back().is_none_or(|(last, _)| time > *last) {
            self.equity.push_back((time, equity.to_f64().unwrap_or(0.0)));
            if self.equity.len() > RETURN_WINDOW + 1 {
                self.equity.pop_front();
            }
        }
        for pnl in round_trip_pnl {
            self.round_trips.push_back(*pnl > Decimal::ZERO);
            if self.round_trips.len() > ROUND_TRIP_WINDOW {
                self.round_trips.pop_front();
            }
            self.closed_trades += 1;
        }

        let realized_volatility = self.realized_volatility();
        let hit_rate = if self.round_trips.is_empty() {
            None
        } else {
            Some(self.round_trips.iter().filter(|won| **won).count() as f64 / self.round_trips.len() as f64)
        };

        let dd_share = (drawdown / DRAWDOWN_REFERENCE).clamp(0.0, 1.0);
        let dd_factor = 1.0 - 0.8 * dd_share;
        let vol_factor = realized_volatility.map_or(1.0, |v| if v > 0.0 { (TARGET_VOLATILITY / v).min(1.0) } else { 1.0 });
        let hit_factor = match hit_rate {
            Some(rate) if self.round_trips.len() >= MIN_ROUND_TRIPS => 0.5 + rate,
            _ => 1.0,
        };
        let risk_scaler = (dd_factor * vol_factor * hit_factor).clamp(0.05, 1.0);
        let evidence = (self.round_trips.len() as f64 / ROUND_TRIP_WINDOW as f64).min(1.0);
        let confidence = (evidence * (0.5 * hit_rate.unwrap_or(0.0) + 0.5 * (1.0 - dd_share))).clamp(0.0, 1.0);

        BrainState {
            risk_scaler,
            confidence,
            updated_at: time,
            inputs: BrainInputs {
                drawdown,
                realized_volatility,
                hit_rate,
                closed_trades: self.closed_trades,
                observed_at: time,
            },
        }
    }

    fn realized_volatility(&self) -> Option<f64> {
        if self.equity.len() < MIN_RETURNS + 1 {
            return None;
        }
        let returns: Vec<f64> = self
            .equity
            .iter()
            .zip(self.equity.iter().skip(1))
            .filter(|((_, a), _)| *a > 0.0)
            .map(|((_, a), (_, b))| b / a - 1.0)
            .collect();
        let n = returns.len() as f64;
        let mean = returns.iter().sum::<f64>() / n;
        let variance = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        let first = self.equity.front()?.0;
        let last = self.equity.back()?.0;
        let mean_step_seconds = (last - first).num_milliseconds() as f64 / 1000.0 / (self.equity.len() - 1) as f64;
        if mean_step_seconds <= 0.0 {
            return None;
        }
        Some(variance.sqrt() * (SECONDS_PER_YEAR / mean_step_seconds).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use rust_decimal_macros::dec;

    fn t(day: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(0, 0).unwrap() + Duration::days(day)
    }

    #[test]
    fn neutral_without_history() {
        let mut brain = Brain::new();
        let state = brain.observe(t(0), dec!(100000), 0.0, &[]);
        assert_eq!(state.risk_scaler, 1.0);
        assert_eq!(state.confidence, 0.0);
    }

    #[test]
    fn drawdown_cuts_risk() {
        let mut brain = Brain::new();
        let calm = brain.observe(t(0), dec!(100000), 0.0, &[]).risk_scaler;
        let hurt = brain.observe(t(1), dec!(90000), 0.10, &[]).risk_scaler;
        let deep = brain.observe(t(2), dec!(75000), 0.25, &[]).risk_scaler;
        assert!(calm > hurt, "calm {calm} vs hurt {hurt}");
        assert!(hurt > deep, "hurt {hurt} vs deep {deep}");
        assert!((deep - 0.2).abs() < 1e-9);
    }

    #[test]
    fn losing_streak_lowers_risk_and_winning_raises_confidence() {
        let mut losing = Brain::new();
        let mut winning = Brain::new();
        let mut l = None;
        let mut w = None;
        for day in 0..10 {
            l = Some(losing.observe(t(day), dec!(100000), 0.0, &[dec!(-5)]));
            w = Some(winning.observe(t(day), dec!(100000), 0.0, &[dec!(5)]));
        }
        let (l, w) = (l.unwrap(), w.unwrap());
        assert!(l.risk_scaler < w.risk_scaler);
        assert!(w.confidence > l.confidence);
        assert_eq!(w.inputs.hit_rate, Some(1.0));
    }

    #[test]
    fn volatile_equity_lowers_risk() {
        let mut brain = Brain::new();
        let mut state = None;
        for day in 0..30 {
            let equity = if day % 2 == 0 { dec!(100000) } else { dec!(95000) };
            state = Some(brain.observe(t(day), equity, 0.0, &[]));
        }
        let state = state.unwrap();
        assert!(state.inputs.realized_volatility.unwrap() > 0.2);
        assert!(state.risk_scaler < 1.0);
    }
}
