//! The background refresher of the live quote cache. It is the only part that waits for
//! rate-limit permits: it refreshes every symbol whose cached quote is older than
//! `refresh_after`, oldest first, and sleeps until an open breaker allows a probe when no
//! provider can be called.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use chrono::Utc;
use neolight_messages::{Quote, Symbol};
use tokio::sync::watch;
use tracing::debug;

use super::cascade::{Cascade, FetchReport};
use crate::persistence::{Persistence, PersistQuotes};
use crate::shared::Shared;

/// Maximum idle sleep, so a new symbol or a released provider is picked up soon.
const MAX_IDLE: Duration = Duration::from_secs(1);

/// Wait before a symbol is tried again when no provider could be reached for it. Short, so that
/// the breakers, not this wait, set the pace of probing while offline, and a recovered provider
/// is used within seconds. A symbol that providers returned without a price (an unknown symbol)
/// waits `refresh_after` instead, so it does not use up their rate limits.
const RETRY_UNREACHED_AFTER: Duration = Duration::from_secs(1);

/// Turns a cascade result into a cache entry fetched now.
pub fn quote_from_report(report: &FetchReport) -> Option<Quote> {
    let (provider, parsed) = report.quote.as_ref()?;
    let now = Utc::now();
    Some(Quote {
        symbol: report.symbol.clone(),
        price: parsed.price,
        bid: parsed.bid,
        ask: parsed.ask,
        open: parsed.price,
        source: provider.as_str().to_string(),
        exchange_time: parsed.exchange_time.unwrap_or(now),
        fetched_at: now,
    })
}

/// Stores quotes in the shared cache; returns the ones that were newer than the cached ones.
pub fn store_quotes(shared: &Shared, reports: &[FetchReport]) -> Vec<Quote> {
    let mut stored = Vec::new();
    let mut cache = shared.quotes.write().expect("quotes lock poisoned");
    for quote in reports.iter().filter_map(quote_from_report) {
        let newer = cache.get(&quote.symbol).is_none_or(|held| held.fetched_at <= quote.fetched_at);
        if newer {
            cache.insert(quote.symbol.clone(), quote.clone());
            stored.push(quote);
        }
    }
    stored
}

pub struct Refresher {
    /// When each symbol was last tried without getting a price, and how long it waits before
    /// the next try.
    pub failed_at: HashMap<Symbol, (Instant, Duration)>,
    pub cascade: Arc<Cascade>,
    pub shared: Arc<Shared>,
    pub persistence: Option<Addr<Persistence>>,
    pub universe: Vec<Symbol>,
    /// A cached quote older than this is refreshed.
    pub refresh_after: Duration,
}

impl Refresher {
    fn due(&self) -> (Vec<Symbol>, Option<Duration>) {
        let now = Utc::now();
        let cache = self.shared.quotes.read().expect("quotes lock poisoned");
        let mut due: Vec<(i64, Symbol)> = Vec::new();
        let mut next: Option<Duration> = None;
        for symbol in &self.universe {
            if let Some((failed, retry_after)) = self.failed_at.get(symbol) {
                let since = failed.elapsed();
                let retry_after = *retry_after;
                if since < retry_after {
                    let left = retry_after - since;
                    next = Some(next.map_or(left, |n| n.min(left)));
                    continue;
                }
            }
            match cache.get(symbol) {
                None => due.push((i64::MAX, symbol.clone())),
                Some(quote) => {
                    let age = (now - quote.fetched_at).to_std().unwrap_or_default();
                    if age >= self.refresh_after {
                        due.push((age.as_millis() as i64, symbol.clone()));
                    } else {
                        let left = self.refresh_after - age;
                        next = Some(next.map_or(left, |n| n.min(left)));
                    }
                }
            }
        }
        due.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        (due.into_iter().map(|(_, s)| s).collect(), next)
    }

    /// Runs until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let (due, next_due) = self.due();
            let idle = if due.is_empty() {
                Some(next_due.unwrap_or(MAX_IDLE).min(MAX_IDLE))
            } else if !self.cascade.any_callable() {
                Some(self.cascade.next_probe_in().unwrap_or(MAX_IDLE).clamp(Duration::from_millis(10), MAX_IDLE))
            } else {
                None
            };
            if let Some(idle) = idle {
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {}
                    _ = stop.changed() => return,
                }
                continue;
            }

            let reports = tokio::select! {
                reports = self.cascade.refresh(&due) => reports,
                _ = stop.changed() => return,
            };
            for report in &reports {
                if report.quote.is_some() {
                    self.failed_at.remove(&report.symbol);
                } else if report.called_any {
                    let wait = if report.reached_any { self.refresh_after } else { RETRY_UNREACHED_AFTER.min(self.refresh_after) };
                    self.failed_at.insert(report.symbol.clone(), (Instant::now(), wait));
                }
            }
            let stored = store_quotes(&self.shared, &reports);
            debug!(due = due.len(), refreshed = stored.len(), "quote refresh pass");
            if !stored.is_empty() {
                if let Some(persistence) = &self.persistence {
                    persistence.do_send(PersistQuotes { quotes: stored });
                }
            }
            if !reports.iter().any(|r| r.called_any) {
                let idle = self.cascade.next_probe_in().unwrap_or(MAX_IDLE).clamp(Duration::from_millis(10), MAX_IDLE);
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}
