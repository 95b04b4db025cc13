//! The `sim` market: a seeded geometric random walk per symbol, so a fresh machine with no keys
//! and no network still trades. The same seed and universe give the same price path.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use neolight_messages::{Bar, Symbol};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::prelude::FromPrimitive;
use rust_decimal::Decimal;

/// Standard deviation of one tick's log return. Large enough that a short moving-average
/// crossover trades within a few dozen ticks.
const TICK_VOLATILITY: f64 = 0.004;

pub struct SimMarket {
    rng: ChaCha8Rng,
    prices: BTreeMap<Symbol, f64>,
}

impl SimMarket {
    pub fn new(seed: u64, universe: &[Symbol]) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let prices = universe.iter().map(|s| (s.clone(), rng.gen_range(20.0..500.0))).collect();
        SimMarket { rng, prices }
    }

    /// Advances every symbol one tick and returns the bars, sorted by symbol.
    pub fn next_tick(&mut self, time: DateTime<Utc>) -> Vec<Bar> {
        let mut bars = Vec::with_capacity(self.prices.len());
        for (symbol, price) in self.prices.iter_mut() {
            // Box-Muller from two uniforms, so the walk depends on nothing but the seed.
            let u1: f64 = self.rng.gen_range(f64::EPSILON..1.0);
            let u2: f64 = self.rng.gen();
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            *price *= (TICK_VOLATILITY * z - 0.5 * TICK_VOLATILITY * TICK_VOLATILITY).exp();
            let close = Decimal::from_f64(*price).unwrap_or(Decimal::ONE).round_dp(2).max(Decimal::new(1, 2));
            bars.push(Bar { symbol: symbol.clone(), time, open: close, high: close, low: close, close, volume: None });
        }
        bars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_path() {
        let universe = [Symbol::new("AAA"), Symbol::new("BBB")];
        let t = DateTime::from_timestamp(0, 0).unwrap();
        let mut a = SimMarket::new(7, &universe);
        let mut b = SimMarket::new(7, &universe);
        for _ in 0..100 {
            assert_eq!(a.next_tick(t), b.next_tick(t));
        }
        let mut c = SimMarket::new(8, &universe);
        assert_ne!(a.next_tick(t), c.next_tick(t));
    }
}
