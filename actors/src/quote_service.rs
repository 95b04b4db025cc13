//! `quote_service`: the quote cache and the start of every trading step.
//!
//! In `sim` and `replay` the market clock hands it each step's bars; it caches one quote per
//! symbol (price = close) with its fetch time on the mesh clock in the shared map that HTTP
//! readers use, then drives the step: `QuotesUpdated` to execution_router (fills at the open),
//! `QuotesUpdated` to smart_trader (decisions at the close), `CloseStep` to execution_router.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use neolight_messages::{CloseStep, Freshness, GetQuote, LiveTick, Quote, QuotesUpdated, StepError, StepReport, Symbol, Tick};
use tracing::info;

use crate::execution_router::ExecutionRouter;
use crate::shared::{AgentState, HeartbeatThrottle, Shared};
use crate::smart_trader::SmartTrader;

pub const NAME: &str = "quote_service";

/// Freshness of a quote fetched at `fetched_at`, seen at mesh time `now`. Age alone decides.
pub fn freshness(now: DateTime<Utc>, fetched_at: DateTime<Utc>, max_age: Duration, stale_cap: Duration) -> Freshness {
    let age_ms = (now - fetched_at).num_milliseconds().max(0) as u128;
    if age_ms <= max_age.as_millis() {
        Freshness::Fresh
    } else if age_ms <= stale_cap.as_millis() {
        Freshness::Stale
    } else {
        Freshness::Expired
    }
}

pub struct QuoteService {
    source: &'static str,
    /// Live market: the symbols traded, and the fetch time of each one's quote already stepped.
    universe: Vec<Symbol>,
    stepped: BTreeMap<Symbol, DateTime<Utc>>,
    router: Addr<ExecutionRouter>,
    trader: Addr<SmartTrader>,
    shared: Arc<Shared>,
    heartbeat: HeartbeatThrottle,
}

impl QuoteService {
    pub fn new(source: &'static str, router: Addr<ExecutionRouter>, trader: Addr<SmartTrader>, shared: Arc<Shared>) -> Self {
        QuoteService {
            source,
            universe: Vec::new(),
            stepped: BTreeMap::new(),
            router,
            trader,
            shared,
            heartbeat: HeartbeatThrottle::default(),
        }
    }

    /// Sets the symbols a live run trades.
    /// Quotes already in the cache (restored from disk) count as stepped.
    pub fn with_universe(mut self, universe: Vec<Symbol>) -> Self {
        self.universe = universe;
        let cache = self.shared.quotes.read().expect("quotes lock poisoned");
        self.stepped = cache.iter().map(|(s, q)| (s.clone(), q.fetched_at)).collect();
        drop(cache);
        self
    }

    /// Drives one step: fills at the open, decisions at the close, then the step's record.
    fn run_step(&self, update: QuotesUpdated) -> ResponseFuture<Result<StepReport, StepError>> {
        let router = self.router.clone();
        let trader = self.trader.clone();
        let close = CloseStep { step: update.step, time: update.time };
        Box::pin(async move {
            let lost = |err: MailboxError| StepError::new(format!("step {} not handled: {err}", close.step));
            router.send(update.clone()).await.map_err(lost)?;
            trader.send(update).await.map_err(lost)?;
            router.send(close.clone()).await.map_err(lost)?
        })
    }
}

impl Actor for QuoteService {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        self.shared.set_agent_state(NAME, AgentState::Running);
        info!(agent = NAME, source = self.source, "started");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.shared.set_agent_state(NAME, AgentState::Stopped);
        let cached = self.shared.quotes.read().map(|q| q.len()).unwrap_or_default();
        info!(agent = NAME, cached, "stopped");
    }
}

impl Handler<Tick> for QuoteService {
    type Result = ResponseFuture<Result<StepReport, StepError>>;

    fn handle(&mut self, msg: Tick, _ctx: &mut Self::Context) -> Self::Result {
        let quotes: Vec<Quote> = msg
            .bars
            .into_iter()
            .map(|bar| Quote {
                symbol: bar.symbol,
                price: bar.close,
                bid: None,
                ask: None,
                open: bar.open,
                source: self.source.to_string(),
                exchange_time: bar.time,
                fetched_at: msg.time,
            })
            .collect();
        {
            // The shared map is the cache: HTTP handlers read it without a message.
            let mut cache = self.shared.quotes.write().expect("quotes lock poisoned");
            for quote in &quotes {
                let newer = cache.get(&quote.symbol).is_none_or(|held| held.exchange_time <= quote.exchange_time);
                if newer {
                    cache.insert(quote.symbol.clone(), quote.clone());
                }
            }
        }
        if self.heartbeat.due() {
            self.shared.heartbeat(NAME);
        }

        self.run_step(QuotesUpdated { step: msg.step, time: msg.time, quotes: Arc::new(quotes) })
    }
}

impl Handler<LiveTick> for QuoteService {
    type Result = ResponseFuture<Result<StepReport, StepError>>;

    /// Steps with the universe's quotes that the refresher stored since the previous step, so
    /// an order fills only at a quote fetched after it was accepted.
    fn handle(&mut self, msg: LiveTick, _ctx: &mut Self::Context) -> Self::Result {
        let quotes: Vec<Quote> = {
            let cache = self.shared.quotes.read().expect("quotes lock poisoned");
            self.universe
                .iter()
                .filter_map(|symbol| cache.get(symbol))
                .filter(|quote| self.stepped.get(&quote.symbol).is_none_or(|last| quote.fetched_at > *last))
                .cloned()
                .collect()
        };
        let mut quotes = quotes;
        quotes.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        for quote in &quotes {
            self.stepped.insert(quote.symbol.clone(), quote.fetched_at);
        }
        if self.heartbeat.due() {
            self.shared.heartbeat(NAME);
        }
        self.run_step(QuotesUpdated { step: msg.step, time: msg.time, quotes: Arc::new(quotes) })
    }
}

impl Handler<GetQuote> for QuoteService {
    type Result = Option<Quote>;

    fn handle(&mut self, msg: GetQuote, _ctx: &mut Self::Context) -> Self::Result {
        self.shared.quotes.read().expect("quotes lock poisoned").get(&msg.symbol).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_boundaries() {
        let t0 = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let max_age = Duration::from_secs(60);
        let cap = Duration::from_secs(3600);
        let cases = [(0, Freshness::Fresh), (60, Freshness::Fresh), (61, Freshness::Stale), (3600, Freshness::Stale), (3601, Freshness::Expired)];
        for (age, expected) in cases {
            let now = t0 + chrono::Duration::seconds(age);
            assert_eq!(freshness(now, t0, max_age, cap), expected, "age {age}s");
        }
    }
}
