//! The provider cascade: tries the providers in order for a symbol, through each one's circuit
//! breaker and rate limiter, until one returns a valid price.
//!
//! - A provider without credentials, with an open breaker, or (for callers) without a rate-limit
//!   permit is skipped at once; callers never wait. The background refresher
//!   ([`Mode::Refresher`]) waits up to `permit_wait` for a permit instead, so a cold start with
//!   many symbols is paced rather than dropped.
//! - An unknown symbol falls through to the next provider without counting against the breaker;
//!   timeouts, connection errors, 5xx and error bodies count; a rate limit opens the breaker at
//!   once; an auth or plan error disables the provider.
//! - Concurrent fetches of one symbol share one cascade run.
//! - When every provider that was called failed to connect, the cascade is `offline` until a
//!   provider responds again. Each change is logged once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use neolight_messages::Symbol;
use serde::Serialize;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::breaker::{BreakerConfig, BreakerState, CallPermit, CircuitBreaker};
use super::classify::{Outcome, ParsedQuote, ProviderId};
use super::client::{Attempted, ProviderClient};
use super::limiter::{default_quotas, ProviderLimiter, Quota};

/// Settings of the breakers and limiters.
#[derive(Debug, Clone)]
pub struct CascadeSettings {
    pub breaker: BreakerConfig,
    /// Rate-limit windows per provider; providers not listed use [`default_quotas`].
    pub quotas: Vec<(ProviderId, Vec<Quota>)>,
    /// Maximum wait of the refresher for one provider's permit before it tries the next one.
    pub permit_wait: Duration,
    /// Maximum time one caller's fetch spends on provider calls; providers not reached by
    /// then are reported as `timeout` without being called.
    pub caller_budget: Duration,
}

impl Default for CascadeSettings {
    fn default() -> Self {
        CascadeSettings {
            breaker: BreakerConfig::default(),
            quotas: Vec::new(),
            permit_wait: Duration::from_secs(5),
            caller_budget: Duration::from_secs(5),
        }
    }
}

/// Origin of a fetch: callers never wait for a rate-limit permit, the refresher does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Caller,
    Refresher,
}

/// One provider's part in a fetch, as `neolight quote --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub provider: &'static str,
    /// `quote`, `unknown_symbol`, `rate_limited`, `auth_error`, `transient`, `malformed`,
    /// `timeout`, `skipped_open`, `skipped_no_permit` or `skipped_no_credentials`.
    pub outcome: &'static str,
    pub detail: String,
    pub elapsed_ms: u64,
}

/// The result of one cascade run for one symbol.
#[derive(Debug, Clone)]
pub struct FetchReport {
    pub symbol: Symbol,
    pub quote: Option<(ProviderId, ParsedQuote)>,
    pub attempts: Vec<Attempt>,
    /// Whether a request was sent to any provider.
    pub called_any: bool,
    /// Whether any provider sent an HTTP response.
    pub reached_any: bool,
}

/// One row of `/providers`.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderView {
    pub name: &'static str,
    pub state: &'static str,
    pub credentials: bool,
    pub attempts: u64,
    pub failures: u64,
    pub last_error: Option<String>,
    pub last_outcome: Option<&'static str>,
    pub next_probe_at: Option<DateTime<Utc>>,
    pub rate_limit: String,
}

#[derive(Default)]
struct SlotStats {
    attempts: u64,
    failures: u64,
    last_error: Option<String>,
    last_outcome: Option<&'static str>,
}

struct Slot {
    id: ProviderId,
    has_credentials: bool,
    breaker: Mutex<CircuitBreaker>,
    limiter: ProviderLimiter,
    stats: Mutex<SlotStats>,
}

pub struct Cascade {
    client: ProviderClient,
    slots: Vec<Slot>,
    inflight: Mutex<HashMap<Symbol, Vec<oneshot::Sender<FetchReport>>>>,
    offline: AtomicBool,
    permit_wait: Duration,
    caller_budget: Duration,
}

/// Time until the next 00:00 UTC, when the providers' daily quotas reset.
fn until_utc_midnight(now: DateTime<Utc>) -> Duration {
    let tomorrow = (now.date_naive() + chrono::Days::new(1)).and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
    (tomorrow - now).to_std().unwrap_or(Duration::from_secs(1))
}

impl Cascade {
    pub fn new(client: ProviderClient, settings: &CascadeSettings) -> Self {
        let slots = ProviderId::ALL
            .iter()
            .enumerate()
            .map(|(index, id)| {
                let quotas = settings
                    .quotas
                    .iter()
                    .find(|(p, _)| p == id)
                    .map(|(_, q)| q.clone())
                    .unwrap_or_else(|| default_quotas(id.as_str()));
                let has_credentials = client.credentials().has(*id);
                Slot {
                    id: *id,
                    has_credentials,
                    breaker: Mutex::new(CircuitBreaker::new(settings.breaker.clone(), has_credentials, 0x6e6c_0000 + index as u64)),
                    limiter: ProviderLimiter::new(&quotas),
                    stats: Mutex::new(SlotStats::default()),
                }
            })
            .collect();
        Cascade { client, slots, inflight: Mutex::new(HashMap::new()), offline: AtomicBool::new(false), permit_wait: settings.permit_wait, caller_budget: settings.caller_budget }
    }

    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Relaxed)
    }

    /// Providers that have credentials, in cascade order.
    pub fn configured(&self) -> Vec<ProviderId> {
        self.slots.iter().filter(|s| s.has_credentials).map(|s| s.id).collect()
    }

    /// Fetches one symbol; concurrent calls for the same symbol share one cascade run. When the
    /// caller running the cascade is dropped before it finishes, the waiting callers start over
    /// and one of them runs the cascade instead.
    pub async fn fetch(&self, symbol: &Symbol, mode: Mode) -> FetchReport {
        loop {
            let receiver = {
                let mut inflight = self.inflight.lock().expect("inflight lock poisoned");
                match inflight.get_mut(symbol) {
                    Some(waiters) => {
                        let (tx, rx) = oneshot::channel();
                        waiters.push(tx);
                        Some(rx)
                    }
                    None => {
                        inflight.insert(symbol.clone(), Vec::new());
                        None
                    }
                }
            };
            match receiver {
                Some(rx) => match rx.await {
                    Ok(report) => return report,
                    // The running caller was dropped: start over.
                    Err(_) => continue,
                },
                None => {
                    let mut guard = InflightGuard { cascade: self, symbol, finished: false };
                    let report = self.run(symbol, mode, 0).await;
                    guard.finish(&report);
                    return report;
                }
            }
        }
    }

    /// Refreshes several symbols: one Alpaca multi-symbol request first when Alpaca can be
    /// called, then the rest of the cascade for each symbol it did not price.
    pub async fn refresh(&self, symbols: &[Symbol]) -> Vec<FetchReport> {
        let mut reports = Vec::with_capacity(symbols.len());
        let mut rest: Vec<(Symbol, Vec<Attempt>)> = symbols.iter().map(|s| (s.clone(), Vec::new())).collect();
        let alpaca = &self.slots[0];
        let mut called = false;
        let mut reached = false;
        if symbols.len() > 1 && alpaca.has_credentials {
            if let Some(permit) = self.acquire(alpaca, Mode::Refresher, &mut Vec::new()).await {
                called = true;
                let (result, elapsed) = self.client.fetch_alpaca_multi(symbols, Utc::now()).await;
                match result {
                    Ok(outcomes) => {
                        reached = true;
                        let priced = outcomes.iter().any(|(_, o)| matches!(o, Outcome::Quote(_)));
                        let first_error = outcomes.iter().map(|(_, o)| o).find(|o| !matches!(o, Outcome::Quote(_) | Outcome::UnknownSymbol { .. }));
                        match first_error {
                            Some(outcome) if !priced => self.settle(alpaca, permit, &Attempted::Answered(outcome.clone())),
                            _ => self.settle(alpaca, permit, &Attempted::Answered(Outcome::UnknownSymbol { detail: String::new() })),
                        }
                        rest.clear();
                        for (symbol, outcome) in outcomes {
                            let attempt = attempt(ProviderId::Alpaca, &Attempted::Answered(outcome.clone()), elapsed);
                            match outcome {
                                Outcome::Quote(quote) => reports.push(FetchReport {
                                    symbol,
                                    quote: Some((ProviderId::Alpaca, quote)),
                                    attempts: vec![attempt],
                                    called_any: true,
                                    reached_any: true,
                                }),
                                _ => rest.push((symbol, vec![attempt])),
                            }
                        }
                    }
                    Err(failed) => {
                        self.settle(alpaca, permit, &failed);
                        for (_, attempts) in rest.iter_mut() {
                            attempts.push(attempt(ProviderId::Alpaca, &failed, elapsed));
                        }
                    }
                }
            }
        }
        let start = if called { 1 } else { 0 };
        for (symbol, mut attempts) in rest {
            let mut report = self.run(&symbol, Mode::Refresher, start).await;
            attempts.append(&mut report.attempts);
            report.attempts = attempts;
            report.called_any |= called;
            report.reached_any |= reached;
            reports.push(report);
        }
        reports
    }

    /// Takes a breaker permit and a rate-limit permit, or records why the provider is skipped.
    async fn acquire(&self, slot: &Slot, mode: Mode, attempts: &mut Vec<Attempt>) -> Option<CallPermit> {
        let skip = |outcome: &'static str, detail: String| Attempt { provider: slot.id.as_str(), outcome, detail, elapsed_ms: 0 };
        if !slot.has_credentials {
            attempts.push(skip("skipped_no_credentials", "no credentials configured".to_string()));
            return None;
        }
        let now = Instant::now();
        let state = slot.breaker.lock().expect("breaker lock poisoned").state(now);
        if !matches!(state, BreakerState::Closed | BreakerState::HalfOpen) {
            attempts.push(skip("skipped_open", format!("breaker {}", state.as_str())));
            return None;
        }
        if !slot.limiter.check() {
            let waited = mode == Mode::Refresher && tokio::time::timeout(self.permit_wait, slot.limiter.until_ready()).await.is_ok();
            if !waited {
                attempts.push(skip("skipped_no_permit", format!("rate limit {} reached", slot.limiter.describe())));
                return None;
            }
        }
        match slot.breaker.lock().expect("breaker lock poisoned").try_acquire(Instant::now()) {
            Ok(permit) => Some(permit),
            Err(skipped) => {
                attempts.push(skip("skipped_open", format!("breaker {}", skipped.state.as_str())));
                None
            }
        }
    }

    /// Runs the cascade from provider `start` on.
    async fn run(&self, symbol: &Symbol, mode: Mode, start: usize) -> FetchReport {
        let mut attempts = Vec::new();
        let mut called_any = false;
        let mut reached_any = false;
        let mut quote = None;
        // A caller gets a result within one budget, however many providers hang. The refresher
        // has no such bound and keeps trying the providers in order.
        let deadline = (mode == Mode::Caller).then(|| Instant::now() + self.caller_budget);
        for slot in &self.slots[start..] {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                attempts.push(Attempt {
                    provider: slot.id.as_str(),
                    outcome: "timeout",
                    detail: format!("not called: the request's budget of {:?} was used up", self.caller_budget),
                    elapsed_ms: 0,
                });
                continue;
            }
            let Some(permit) = self.acquire(slot, mode, &mut attempts).await else { continue };
            called_any = true;
            let started = Instant::now();
            let call = self.client.fetch(slot.id, symbol, Utc::now());
            let (attempted, elapsed) = match left {
                Some(left) => match tokio::time::timeout(left, call).await {
                    Ok(done) => done,
                    Err(_) => (Attempted::Timeout, started.elapsed()),
                },
                None => call.await,
            };
            if matches!(attempted, Attempted::Answered(_)) {
                reached_any = true;
            }
            attempts.push(attempt(slot.id, &attempted, elapsed));
            self.settle(slot, permit, &attempted);
            if let Attempted::Answered(Outcome::Quote(parsed)) = attempted {
                quote = Some((slot.id, parsed));
                break;
            }
        }
        self.note_connectivity(called_any, reached_any, symbol);
        FetchReport { symbol: symbol.clone(), quote, attempts, called_any, reached_any }
    }

    /// Reports a call's result to the provider's breaker and counters, logging state changes.
    fn settle(&self, slot: &Slot, permit: CallPermit, attempted: &Attempted) {
        let now = Instant::now();
        let mut breaker = slot.breaker.lock().expect("breaker lock poisoned");
        let before = breaker.state(now);
        let failed = match attempted {
            Attempted::Answered(Outcome::Quote(_)) => {
                breaker.record_success(permit, now);
                false
            }
            Attempted::Answered(Outcome::UnknownSymbol { .. }) => {
                breaker.record_neutral(permit, now);
                false
            }
            Attempted::Answered(Outcome::RateLimited { wait, daily: true, .. }) => {
                let until = now + wait.unwrap_or_else(|| until_utc_midnight(Utc::now()));
                breaker.record_daily_quota(permit, now, until);
                true
            }
            Attempted::Answered(Outcome::RateLimited { wait, .. }) => {
                breaker.record_rate_limited(permit, now, *wait);
                true
            }
            Attempted::Answered(Outcome::AuthError { detail }) => {
                breaker.record_auth_error(permit, detail);
                true
            }
            _ => {
                breaker.record_failure(permit, now);
                true
            }
        };
        let after = breaker.state(now);
        let next_probe = breaker.next_probe_at(now);
        drop(breaker);

        let mut stats = slot.stats.lock().expect("stats lock poisoned");
        stats.attempts += 1;
        stats.last_outcome = Some(attempted.label());
        if failed {
            stats.failures += 1;
            stats.last_error = Some(format!("{}: {}", attempted.label(), attempted.detail()));
        }
        drop(stats);
        if before != after {
            let wait_s = next_probe.map(|at| at.saturating_duration_since(now).as_secs_f64());
            match after {
                BreakerState::Closed => info!(provider = slot.id.as_str(), from = before.as_str(), "breaker closed"),
                _ => warn!(provider = slot.id.as_str(), from = before.as_str(), to = after.as_str(), next_probe_in_s = ?wait_s, reason = %attempted.detail(), "breaker changed"),
            }
        }
    }

    fn note_connectivity(&self, called_any: bool, reached_any: bool, symbol: &Symbol) {
        if reached_any {
            if self.offline.swap(false, Ordering::Relaxed) {
                info!(symbol = %symbol, "online: a quote provider responded again");
            }
        } else if called_any && !self.offline.swap(true, Ordering::Relaxed) {
            warn!(symbol = %symbol, "offline: no quote provider could be reached");
        }
    }

    /// Earliest moment an open breaker lets a probe through, if any provider is waiting.
    pub fn next_probe_in(&self) -> Option<Duration> {
        let now = Instant::now();
        self.slots
            .iter()
            .filter_map(|s| s.breaker.lock().expect("breaker lock poisoned").next_probe_at(now))
            .min()
            .map(|at| at.saturating_duration_since(now))
    }

    /// Returns whether some provider can be called now (credentials and a closed or half-open breaker).
    pub fn any_callable(&self) -> bool {
        let now = Instant::now();
        self.slots.iter().any(|s| {
            s.has_credentials
                && matches!(s.breaker.lock().expect("breaker lock poisoned").state(now), BreakerState::Closed | BreakerState::HalfOpen)
        })
    }

    pub fn snapshot(&self) -> Vec<ProviderView> {
        let now = Instant::now();
        let wall = Utc::now();
        self.slots
            .iter()
            .map(|slot| {
                let breaker = slot.breaker.lock().expect("breaker lock poisoned");
                let state = breaker.state(now);
                let next = breaker.next_probe_at(now);
                drop(breaker);
                let stats = slot.stats.lock().expect("stats lock poisoned");
                ProviderView {
                    name: slot.id.as_str(),
                    state: state.as_str(),
                    credentials: slot.has_credentials,
                    attempts: stats.attempts,
                    failures: stats.failures,
                    last_error: stats.last_error.clone(),
                    last_outcome: stats.last_outcome,
                    next_probe_at: next.map(|at| wall + chrono::Duration::from_std(at.saturating_duration_since(now)).unwrap_or_default()),
                    rate_limit: slot.limiter.describe(),
                }
            })
            .collect()
    }

    /// Operator isolation; returns false for an unknown provider.
    pub fn isolate(&self, provider: ProviderId) -> bool {
        let Some(slot) = self.slots.iter().find(|s| s.id == provider) else { return false };
        slot.breaker.lock().expect("breaker lock poisoned").isolate();
        warn!(provider = provider.as_str(), "provider isolated by the operator");
        true
    }

    pub fn release(&self, provider: ProviderId) -> bool {
        let Some(slot) = self.slots.iter().find(|s| s.id == provider) else { return false };
        slot.breaker.lock().expect("breaker lock poisoned").release(Instant::now());
        info!(provider = provider.as_str(), "provider released by the operator");
        true
    }
}

/// Removes a symbol's in-flight entry when its cascade run ends or is dropped. Dropping the
/// waiters' senders wakes them, so they do not wait for a run that will never finish.
struct InflightGuard<'a> {
    cascade: &'a Cascade,
    symbol: &'a Symbol,
    finished: bool,
}

impl InflightGuard<'_> {
    fn finish(&mut self, report: &FetchReport) {
        let waiters = self.cascade.inflight.lock().expect("inflight lock poisoned").remove(self.symbol).unwrap_or_default();
        for waiter in waiters {
            let _ = waiter.send(report.clone());
        }
        self.finished = true;
    }
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            if let Ok(mut inflight) = self.cascade.inflight.lock() {
                inflight.remove(self.symbol);
            }
        }
    }
}

fn attempt(provider: ProviderId, attempted: &Attempted, elapsed: Duration) -> Attempt {
    Attempt {
        provider: provider.as_str(),
        outcome: attempted.label(),
        detail: attempted.detail(),
        elapsed_ms: elapsed.as_millis() as u64,
    }
}
