//! Per-provider circuit breaker with injected time.
//!
//! Every method takes the current [`Instant`] from the caller, so the breaker never reads a
//! clock and tests drive it with `base + offset` instants. The jitter of open periods comes
//! from a ChaCha8 generator seeded at construction, so a given seed and call sequence always
//! yields the same periods.
//!
//! A call goes through [`CircuitBreaker::try_acquire`], which returns a [`CallPermit`] or a
//! [`Skip`], and its outcome is reported by passing the permit to exactly one `record_*`
//! method. Permits from before a state change are *stale*: their successes and failures no
//! longer count, but a rate-limit or daily-quota report may still lengthen an open period that
//! is in force, and an auth error still disables the provider. Permits from before the last
//! [`isolate`](CircuitBreaker::isolate), [`release`](CircuitBreaker::release) or
//! [`reset_disabled`](CircuitBreaker::reset_disabled) are ignored entirely.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Breaker state as operators see it, serialized in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls pass and their outcomes feed the failure-rate window.
    Closed,
    /// Calls are skipped until the open period ends.
    Open,
    /// A bounded number of trial calls decide whether to close or reopen.
    HalfOpen,
    /// Isolated by the operator until [`CircuitBreaker::release`].
    Isolated,
    /// Disabled by an auth or plan error until [`CircuitBreaker::reset_disabled`].
    Disabled,
    /// The provider needs credentials and none are configured.
    NoCredentials,
}

impl BreakerState {
    /// Returns the snake_case name used in routes, logs, metrics and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Isolated => "isolated",
            BreakerState::Disabled => "disabled",
            BreakerState::NoCredentials => "no_credentials",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Thresholds and timings of one provider's breaker.
///
/// Out-of-range values are tolerated rather than rejected: `window` and `half_open_trials`
/// of 0 act as 1, `min_calls` is capped at the window size, and `jitter` is clamped to
/// `[0, 1]` (NaN acts as 0).
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// Calls in the window before the failure rate is judged.
    pub min_calls: u32,
    /// Number of most recent calls whose outcomes are kept.
    pub window: u32,
    /// The breaker opens when `failures / calls >= failure_rate` with at least one failure.
    pub failure_rate: f64,
    /// A call that takes longer than this counts as a failure even if it succeeded.
    pub slow_call: Duration,
    /// First open period.
    pub base_open: Duration,
    /// Cap of the doubling open period, applied before jitter.
    pub max_open: Duration,
    /// Each backoff period is multiplied by a factor drawn from `[1 - jitter, 1 + jitter)`.
    pub jitter: f64,
    /// Trial calls allowed at the same time in half-open.
    pub half_open_trials: u32,
    /// A half-open trial not reported within this is treated as failed at that deadline.
    pub half_open_max_wait: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            min_calls: 5,
            window: 20,
            failure_rate: 0.5,
            slow_call: Duration::from_secs(3),
            base_open: Duration::from_secs(30),
            max_open: Duration::from_secs(10 * 60),
            jitter: 0.2,
            half_open_trials: 1,
            half_open_max_wait: Duration::from_secs(10),
        }
    }
}

impl BreakerConfig {
    /// Returns the open period, before jitter, of the `opens`-th consecutive open:
    /// `base_open * 2^(opens - 1)`, capped at `max_open`. `opens` of 0 is treated as 1.
    pub fn open_period(&self, opens: u32) -> Duration {
        let exponent = opens.saturating_sub(1);
        let doubled = if exponent >= 32 {
            None
        } else {
            self.base_open.checked_mul(1u32 << exponent)
        };
        match doubled {
            Some(period) => period.min(self.max_open),
            None => self.max_open,
        }
    }

    fn window_len(&self) -> usize {
        self.window.max(1) as usize
    }

    fn effective_min_calls(&self) -> usize {
        (self.min_calls.max(1) as usize).min(self.window_len())
    }

    fn trial_slots(&self) -> usize {
        self.half_open_trials.max(1) as usize
    }

    fn jitter_amplitude(&self) -> f64 {
        if self.jitter.is_nan() {
            0.0
        } else {
            self.jitter.clamp(0.0, 1.0)
        }
    }
}

/// Permission for one provider call, to be passed to exactly one `record_*` method.
///
/// The permit is neither `Clone` nor `Copy`, so one call cannot be reported twice.
#[must_use = "report the call's outcome with one of the CircuitBreaker::record_* methods"]
#[derive(Debug)]
pub struct CallPermit {
    started: Instant,
    epoch: u64,
    trial: Option<u64>,
}

impl CallPermit {
    /// Returns the instant passed to `try_acquire`, from which the call's duration is measured.
    pub fn started_at(&self) -> Instant {
        self.started
    }

    /// Returns whether the permit is a half-open trial.
    pub fn is_trial(&self) -> bool {
        self.trial.is_some()
    }
}

/// Reason a call was not permitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip {
    /// State at the time of the request.
    pub state: BreakerState,
    /// When the state is `Open`, the instant at which it turns half-open.
    pub next_probe_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

#[derive(Debug, Clone, Copy)]
struct Trial {
    id: u64,
    started: Instant,
}

/// Relation of a reported permit to the breaker's current state.
enum Standing {
    /// Granted in the current closed period.
    Current,
    /// An outstanding half-open trial.
    Trial,
    /// Granted before the last health transition.
    Stale,
    /// Granted before the last operator or configuration action, or reported while the
    /// breaker is isolated, disabled or without credentials.
    Void,
}

/// Circuit breaker of one provider.
///
/// Methods that change state take `&mut self`, so a breaker shared between threads needs a
/// lock or a single owning actor. Every method runs in O(window + half_open_trials) and
/// allocates only to store a disabled detail or to grow the trial list.
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    has_credentials: bool,
    disabled: Option<String>,
    isolated: bool,
    health: Health,
    /// Outcomes of the current closed period, oldest first, where `true` is a failure.
    outcomes: VecDeque<bool>,
    failures: usize,
    trials: Vec<Trial>,
    next_trial_id: u64,
    /// Counter incremented on every state change. Each permit carries its value at grant time.
    epoch: u64,
    /// Epoch of the last operator or configuration action. Permits from older epochs are void.
    operator_epoch: u64,
    consecutive_opens: u32,
    /// Jitter factor of the next backoff period, drawn ahead so that `state` can compute a
    /// reopen caused by a stuck trial without mutating the generator.
    next_jitter: f64,
    rng: ChaCha8Rng,
}

impl CircuitBreaker {
    /// Creates a closed breaker, or one in `NoCredentials` when `has_credentials` is false.
    /// `seed` seeds the jitter generator.
    pub fn new(config: BreakerConfig, has_credentials: bool, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let next_jitter = draw_jitter(&mut rng, config.jitter_amplitude());
        let window_len = config.window_len();
        CircuitBreaker {
            config,
            has_credentials,
            disabled: None,
            isolated: false,
            health: Health::Closed,
            outcomes: VecDeque::with_capacity(window_len),
            failures: 0,
            trials: Vec::new(),
            next_trial_id: 0,
            epoch: 0,
            operator_epoch: 0,
            consecutive_opens: 0,
            next_jitter,
            rng,
        }
    }

    /// Returns the configuration given at construction.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// Returns the state at `now` without mutating the breaker.
    ///
    /// An open period that has ended shows as `HalfOpen`, and a half-open trial past
    /// `half_open_max_wait` shows as the reopened state it leads to. Precedence:
    /// `NoCredentials`, then `Disabled`, then `Isolated`, then the health state.
    pub fn state(&self, now: Instant) -> BreakerState {
        if let Some(state) = self.override_state() {
            return state;
        }
        match self.projected_health(now) {
            Health::Closed => BreakerState::Closed,
            Health::Open { .. } => BreakerState::Open,
            Health::HalfOpen => BreakerState::HalfOpen,
        }
    }

    /// Returns, when the breaker is open at `now`, the instant at which it turns half-open.
    pub fn next_probe_at(&self, now: Instant) -> Option<Instant> {
        if self.override_state().is_some() {
            return None;
        }
        match self.projected_health(now) {
            Health::Open { until } => Some(until),
            Health::Closed | Health::HalfOpen => None,
        }
    }

    /// Returns how many times the breaker has opened since it was last closed by a
    /// successful trial, a release or a reset.
    pub fn consecutive_opens(&self) -> u32 {
        self.consecutive_opens
    }

    /// Returns the detail given with the auth or plan error while the breaker is disabled.
    pub fn disabled_detail(&self) -> Option<&str> {
        self.disabled.as_deref()
    }

    /// Returns `(calls, failures)` in the failure-rate window of the current closed period.
    pub fn window_counts(&self) -> (usize, usize) {
        (self.outcomes.len(), self.failures)
    }

    /// Requests permission for one call at `now`.
    ///
    /// `Closed` always grants. `HalfOpen` grants while fewer than `half_open_trials` trials
    /// are outstanding. Every other state returns a [`Skip`].
    pub fn try_acquire(&mut self, now: Instant) -> Result<CallPermit, Skip> {
        if let Some(state) = self.override_state() {
            return Err(Skip {
                state,
                next_probe_at: None,
            });
        }
        self.advance(now);
        match self.health {
            Health::Closed => Ok(CallPermit {
                started: now,
                epoch: self.epoch,
                trial: None,
            }),
            Health::Open { until } => Err(Skip {
                state: BreakerState::Open,
                next_probe_at: Some(until),
            }),
            Health::HalfOpen => {
                if self.trials.len() >= self.config.trial_slots() {
                    return Err(Skip {
                        state: BreakerState::HalfOpen,
                        next_probe_at: None,
                    });
                }
                let id = self.next_trial_id;
                self.next_trial_id += 1;
                self.trials.push(Trial { id, started: now });
                Ok(CallPermit {
                    started: now,
                    epoch: self.epoch,
                    trial: Some(id),
                })
            }
        }
    }

    /// Records a proper response received at `now`.
    ///
    /// A call slower than `slow_call` (measured from the permit's start) counts as a failure.
    pub fn record_success(&mut self, permit: CallPermit, now: Instant) {
        let slow = now.saturating_duration_since(permit.started) > self.config.slow_call;
        self.record_outcome(permit, now, slow);
    }

    /// Records a timeout, connection error, 5xx or an error body sent with HTTP 200.
    pub fn record_failure(&mut self, permit: CallPermit, now: Instant) {
        self.record_outcome(permit, now, true);
    }

    /// Records a proper response for a symbol the provider does not know.
    ///
    /// It is handled exactly like [`record_success`](Self::record_success), including the
    /// slow-call rule, so a fast neutral response closes a half-open breaker.
    pub fn record_neutral(&mut self, permit: CallPermit, now: Instant) {
        self.record_success(permit, now);
    }

    /// Records a rate-limit response (429 or a rate-limit body) received at `now`.
    ///
    /// The breaker opens at once, whatever the call count, until `now + wait` when the
    /// provider named a wait, otherwise for the next backoff period. The named wait is used
    /// as given, without jitter or cap. For a stale permit the report only lengthens an open
    /// period still in force (without a named wait, by the current unjittered backoff).
    pub fn record_rate_limited(
        &mut self,
        permit: CallPermit,
        now: Instant,
        wait: Option<Duration>,
    ) {
        match self.standing(&permit, Some(now)) {
            Standing::Current | Standing::Trial => match wait {
                Some(wait) => self.open_until(saturating_add(now, wait)),
                None => self.open_with_backoff(now),
            },
            Standing::Stale => {
                let period =
                    wait.unwrap_or_else(|| self.config.open_period(self.consecutive_opens.max(1)));
                self.extend_open(saturating_add(now, period));
            }
            Standing::Void => {}
        }
    }

    /// Records a used-up daily quota: the breaker stays open until `until`, the provider's
    /// next day reset (see [`until_next_daily_reset`]). For a stale permit the report only
    /// lengthens an open period still in force.
    pub fn record_daily_quota(&mut self, permit: CallPermit, now: Instant, until: Instant) {
        match self.standing(&permit, Some(now)) {
            Standing::Current | Standing::Trial => self.open_until(until),
            Standing::Stale => self.extend_open(until),
            Standing::Void => {}
        }
    }

    /// Records an auth or plan error: the breaker becomes `Disabled` and keeps `detail`,
    /// which is stored as given, so the caller scrubs secrets from it first.
    pub fn record_auth_error(&mut self, permit: CallPermit, detail: &str) {
        if let Standing::Void = self.standing(&permit, None) {
            return;
        }
        self.disabled = Some(detail.to_owned());
        self.trials.clear();
        self.epoch += 1;
    }

    /// Isolates the provider on the operator's request. Permits granted before are ignored
    /// when reported. A breaker without credentials or disabled keeps showing that state, and
    /// shows `Isolated` once that condition is gone.
    pub fn isolate(&mut self) {
        self.isolated = true;
        self.trials.clear();
        self.begin_operator_epoch();
    }

    /// Ends an isolation on the operator's request and returns the health state to `Closed`
    /// with a clean window and a reset backoff. It also force-closes an open or half-open
    /// breaker that was not isolated. It does not clear `Disabled` or `NoCredentials`.
    /// Permits granted before are ignored when reported.
    ///
    /// The result does not depend on `_now`, which keeps the signature in line with the
    /// other methods that take the caller's clock.
    pub fn release(&mut self, _now: Instant) {
        self.isolated = false;
        self.reset_health();
        self.begin_operator_epoch();
    }

    /// Clears `Disabled` after the provider's configuration changed, returning to `Closed`
    /// with a clean window and a reset backoff. Has no effect when not disabled.
    pub fn reset_disabled(&mut self) {
        if self.disabled.take().is_some() {
            self.reset_health();
            self.begin_operator_epoch();
        }
    }

    fn override_state(&self) -> Option<BreakerState> {
        if !self.has_credentials {
            Some(BreakerState::NoCredentials)
        } else if self.disabled.is_some() {
            Some(BreakerState::Disabled)
        } else if self.isolated {
            Some(BreakerState::Isolated)
        } else {
            None
        }
    }

    /// Earliest instant at which an outstanding trial counts as failed.
    fn stuck_deadline(&self) -> Option<Instant> {
        self.trials
            .iter()
            .map(|trial| saturating_add(trial.started, self.config.half_open_max_wait))
            .min()
    }

    /// Jittered length of the next backoff period, using the pre-drawn factor.
    fn next_backoff(&self) -> Duration {
        let opens = self.consecutive_opens.saturating_add(1);
        scale(self.config.open_period(opens), self.next_jitter)
    }

    /// Health at `now` from the passage of time alone. This must match what
    /// [`advance`](Self::advance) stores.
    fn projected_health(&self, now: Instant) -> Health {
        match self.health {
            Health::Closed => Health::Closed,
            Health::Open { until } if now >= until => Health::HalfOpen,
            Health::Open { until } => Health::Open { until },
            Health::HalfOpen => match self.stuck_deadline() {
                Some(deadline) if now >= deadline => {
                    let until = saturating_add(deadline, self.next_backoff());
                    if now >= until {
                        Health::HalfOpen
                    } else {
                        Health::Open { until }
                    }
                }
                _ => Health::HalfOpen,
            },
        }
    }

    /// Stores the transitions caused by the passage of time up to `now`.
    fn advance(&mut self, now: Instant) {
        match self.health {
            Health::Closed => {}
            Health::Open { until } => {
                if now >= until {
                    self.health = Health::HalfOpen;
                }
            }
            Health::HalfOpen => {
                if let Some(deadline) = self.stuck_deadline() {
                    if now >= deadline {
                        self.open_with_backoff(deadline);
                        if let Health::Open { until } = self.health {
                            if now >= until {
                                self.health = Health::HalfOpen;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Classifies a reported permit. `now` is `None` for reports without a time, which then
    /// see the stored health without time-based transitions.
    fn standing(&mut self, permit: &CallPermit, now: Option<Instant>) -> Standing {
        if self.override_state().is_some() || permit.epoch < self.operator_epoch {
            return Standing::Void;
        }
        if let Some(now) = now {
            self.advance(now);
        }
        match (self.health, permit.trial) {
            (Health::Closed, None) if permit.epoch == self.epoch => Standing::Current,
            (Health::HalfOpen, Some(id)) if self.trials.iter().any(|t| t.id == id) => {
                Standing::Trial
            }
            _ => Standing::Stale,
        }
    }

    fn record_outcome(&mut self, permit: CallPermit, now: Instant, failed: bool) {
        match self.standing(&permit, Some(now)) {
            Standing::Current => {
                self.push_outcome(failed);
                // Only a failure can open the breaker: a provider whose latest call succeeded
                // is not taken out because its earlier calls failed.
                if failed && self.failure_rate_exceeded() {
                    self.open_with_backoff(now);
                }
            }
            Standing::Trial => {
                if failed {
                    self.open_with_backoff(now);
                } else {
                    self.reset_health();
                    self.epoch += 1;
                }
            }
            Standing::Stale | Standing::Void => {}
        }
    }

    fn push_outcome(&mut self, failed: bool) {
        if self.outcomes.len() >= self.config.window_len() {
            if let Some(true) = self.outcomes.pop_front() {
                self.failures -= 1;
            }
        }
        self.outcomes.push_back(failed);
        if failed {
            self.failures += 1;
        }
    }

    fn failure_rate_exceeded(&self) -> bool {
        let calls = self.outcomes.len();
        calls >= self.config.effective_min_calls()
            && self.failures > 0
            && self.failures as f64 / calls as f64 >= self.config.failure_rate
    }

    /// Opens at `at` for the next jittered backoff period and draws the following factor.
    fn open_with_backoff(&mut self, at: Instant) {
        let until = saturating_add(at, self.next_backoff());
        self.next_jitter = draw_jitter(&mut self.rng, self.config.jitter_amplitude());
        self.open_until(until);
    }

    fn open_until(&mut self, until: Instant) {
        self.consecutive_opens = self.consecutive_opens.saturating_add(1);
        self.health = Health::Open { until };
        self.outcomes.clear();
        self.failures = 0;
        self.trials.clear();
        self.epoch += 1;
    }

    /// Moves the end of an open period in force to `until` if that is later.
    fn extend_open(&mut self, until: Instant) {
        if let Health::Open { until: current } = self.health {
            self.health = Health::Open {
                until: current.max(until),
            };
        }
    }

    fn reset_health(&mut self) {
        self.health = Health::Closed;
        self.consecutive_opens = 0;
        self.outcomes.clear();
        self.failures = 0;
        self.trials.clear();
    }

    fn begin_operator_epoch(&mut self) {
        self.epoch += 1;
        self.operator_epoch = self.epoch;
    }
}

/// Returns the time from `now` until the next `reset_at` (UTC wall-clock time), the moment a
/// provider's daily quota resets. `NaiveTime::MIN` gives 00:00 UTC, the usual reset. A `now`
/// exactly at the reset time returns a full day.
pub fn until_next_daily_reset(now: DateTime<Utc>, reset_at: NaiveTime) -> Duration {
    let today = now.date_naive().and_time(reset_at).and_utc();
    let next = if today > now {
        today
    } else {
        today + chrono::Duration::days(1)
    };
    (next - now).to_std().unwrap_or(Duration::ZERO)
}

/// Draws a factor in `[1 - amplitude, 1 + amplitude)` for `amplitude` in `[0, 1]`.
fn draw_jitter(rng: &mut ChaCha8Rng, amplitude: f64) -> f64 {
    let unit: f64 = rng.gen();
    1.0 + amplitude * (2.0 * unit - 1.0)
}

/// Multiplies `period` by a non-negative `factor`, saturating at `Duration::MAX`.
fn scale(period: Duration, factor: f64) -> Duration {
    Duration::try_from_secs_f64(period.as_secs_f64() * factor).unwrap_or(Duration::MAX)
}

/// Adds `duration` to `at`, falling back to a century later when the sum is not
/// representable.
fn saturating_add(at: Instant, duration: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
    at.checked_add(duration)
        .or_else(|| at.checked_add(CENTURY))
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    const SEC: Duration = Duration::from_secs(1);

    /// Returns a configuration without jitter, so open periods are exact.
    fn exact_config() -> BreakerConfig {
        BreakerConfig {
            min_calls: 5,
            window: 20,
            failure_rate: 0.5,
            slow_call: 3 * SEC,
            base_open: 10 * SEC,
            max_open: 80 * SEC,
            jitter: 0.0,
            half_open_trials: 1,
            half_open_max_wait: 10 * SEC,
        }
    }

    fn at(base: Instant, secs: u64) -> Instant {
        base + Duration::from_secs(secs)
    }

    fn fail_once(breaker: &mut CircuitBreaker, now: Instant) {
        let permit = breaker.try_acquire(now).expect("closed breaker grants");
        breaker.record_failure(permit, now);
    }

    fn succeed_once(breaker: &mut CircuitBreaker, now: Instant) {
        let permit = breaker.try_acquire(now).expect("closed breaker grants");
        breaker.record_success(permit, now);
    }

    /// Opens a closed breaker at `now` with `min_calls` failures.
    fn open_by_failures(breaker: &mut CircuitBreaker, now: Instant) {
        for _ in 0..breaker.config().min_calls {
            fail_once(breaker, now);
        }
        assert_eq!(breaker.state(now), BreakerState::Open);
    }

    #[test]
    fn config_defaults() {
        let config = BreakerConfig::default();
        assert_eq!(config.min_calls, 5);
        assert_eq!(config.window, 20);
        assert_eq!(config.failure_rate, 0.5);
        assert_eq!(config.slow_call, 3 * SEC);
        assert_eq!(config.base_open, 30 * SEC);
        assert_eq!(config.max_open, 600 * SEC);
        assert_eq!(config.jitter, 0.2);
        assert_eq!(config.half_open_trials, 1);
        assert_eq!(config.half_open_max_wait, 10 * SEC);
    }

    #[test]
    fn state_names_are_snake_case() {
        let cases = [
            (BreakerState::Closed, "closed"),
            (BreakerState::Open, "open"),
            (BreakerState::HalfOpen, "half_open"),
            (BreakerState::Isolated, "isolated"),
            (BreakerState::Disabled, "disabled"),
            (BreakerState::NoCredentials, "no_credentials"),
        ];
        for (state, name) in cases {
            assert_eq!(state.as_str(), name);
            assert_eq!(state.to_string(), name);
        }
    }

    #[test]
    fn open_period_doubles_and_caps() {
        let config = exact_config();
        let periods: Vec<u64> = (1..=6).map(|n| config.open_period(n).as_secs()).collect();
        assert_eq!(periods, vec![10, 20, 40, 80, 80, 80]);
        assert_eq!(config.open_period(0), 10 * SEC);
        assert_eq!(config.open_period(u32::MAX), 80 * SEC);
    }

    #[test]
    fn new_breaker_is_closed() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        assert_eq!(breaker.state(base), BreakerState::Closed);
        assert_eq!(breaker.next_probe_at(base), None);
        assert_eq!(breaker.consecutive_opens(), 0);
        let permit = breaker.try_acquire(base).unwrap();
        assert!(!permit.is_trial());
        assert_eq!(permit.started_at(), base);
        breaker.record_success(permit, base);
        assert_eq!(breaker.window_counts(), (1, 0));
    }

    #[test]
    fn min_calls_respected() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        for _ in 0..4 {
            fail_once(&mut breaker, base);
        }
        assert_eq!(breaker.state(base), BreakerState::Closed);
        assert_eq!(breaker.window_counts(), (4, 4));
        fail_once(&mut breaker, base);
        assert_eq!(breaker.state(base), BreakerState::Open);
        assert_eq!(breaker.next_probe_at(base), Some(at(base, 10)));
        assert_eq!(breaker.consecutive_opens(), 1);
    }

    #[test]
    fn success_never_opens() {
        let base = Instant::now();
        let config = BreakerConfig { min_calls: 5, jitter: 0.0, ..BreakerConfig::default() };
        let mut breaker = CircuitBreaker::new(config, true, 1);
        for i in 0..4 {
            let permit = breaker.try_acquire(base + Duration::from_millis(i)).expect("closed grants");
            breaker.record_failure(permit, base + Duration::from_millis(i));
        }
        let permit = breaker.try_acquire(base + Duration::from_millis(10)).expect("still closed");
        breaker.record_success(permit, base + Duration::from_millis(11));
        assert_eq!(breaker.state(base + Duration::from_millis(12)), BreakerState::Closed, "a success at min_calls must not open");
    }

    #[test]
    fn failure_rate_threshold() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        for _ in 0..5 {
            succeed_once(&mut breaker, base);
        }
        for _ in 0..4 {
            fail_once(&mut breaker, base);
        }
        // 4 failures in 9 calls is below 0.5.
        assert_eq!(breaker.state(base), BreakerState::Closed);
        fail_once(&mut breaker, base);
        // 5 failures in 10 calls reaches 0.5.
        assert_eq!(breaker.state(base), BreakerState::Open);
    }

    #[test]
    fn window_forgets_old_failures() {
        let base = Instant::now();
        let config = BreakerConfig {
            window: 4,
            min_calls: 4,
            failure_rate: 0.75,
            ..exact_config()
        };
        let mut breaker = CircuitBreaker::new(config, true, 1);
        fail_once(&mut breaker, base);
        fail_once(&mut breaker, base);
        succeed_once(&mut breaker, base);
        succeed_once(&mut breaker, base);
        succeed_once(&mut breaker, base);
        assert_eq!(breaker.window_counts(), (4, 1));
        fail_once(&mut breaker, base);
        fail_once(&mut breaker, base);
        assert_eq!(breaker.window_counts(), (4, 2));
        assert_eq!(breaker.state(base), BreakerState::Closed);
        fail_once(&mut breaker, base);
        assert_eq!(breaker.state(base), BreakerState::Open);
    }

    #[test]
    fn slow_success_counts_as_failure() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        let permit = breaker.try_acquire(base).unwrap();
        breaker.record_success(permit, base + 3 * SEC);
        assert_eq!(
            breaker.window_counts(),
            (1, 0),
            "exactly slow_call is not slow"
        );
        let slow = base + 3 * SEC + Duration::from_millis(1);
        for _ in 0..3 {
            let permit = breaker.try_acquire(base).unwrap();
            breaker.record_success(permit, slow);
        }
        assert_eq!(breaker.window_counts(), (4, 3));
        let permit = breaker.try_acquire(base).unwrap();
        breaker.record_success(permit, slow);
        assert_eq!(breaker.state(slow), BreakerState::Open);
    }

    #[test]
    fn neutral_counts_as_success() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        for _ in 0..5 {
            let permit = breaker.try_acquire(base).unwrap();
            breaker.record_neutral(permit, base);
        }
        assert_eq!(breaker.window_counts(), (5, 0));
        assert_eq!(breaker.state(base), BreakerState::Closed);
    }

    #[test]
    fn open_turns_half_open_after_period() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        open_by_failures(&mut breaker, base);
        let skip = breaker.try_acquire(at(base, 9)).unwrap_err();
        assert_eq!(skip.state, BreakerState::Open);
        assert_eq!(skip.next_probe_at, Some(at(base, 10)));
        assert_eq!(breaker.state(at(base, 10)), BreakerState::HalfOpen);
        assert_eq!(breaker.next_probe_at(at(base, 10)), None);
        // `state` is computed and did not change the stored state.
        assert_eq!(breaker.state(at(base, 9)), BreakerState::Open);
    }

    #[test]
    fn rate_limit_opens_with_named_wait() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        let permit = breaker.try_acquire(base).unwrap();
        breaker.record_rate_limited(permit, base, Some(45 * SEC));
        assert_eq!(breaker.state(base), BreakerState::Open);
        assert_eq!(breaker.next_probe_at(base), Some(at(base, 45)));
        assert_eq!(breaker.consecutive_opens(), 1);
        assert_eq!(breaker.state(at(base, 45)), BreakerState::HalfOpen);
    }

    #[test]
    fn rate_limit_without_wait_uses_backoff() {
        let base = Instant::now();
        let config = BreakerConfig {
            jitter: 0.2,
            ..exact_config()
        };
        for seed in 0..50 {
            let mut breaker = CircuitBreaker::new(config.clone(), true, seed);
            let permit = breaker.try_acquire(base).unwrap();
            breaker.record_rate_limited(permit, base, None);
            let period = breaker.next_probe_at(base).unwrap() - base;
            assert!(period >= 8 * SEC, "seed {seed}: {period:?} below 8 s");
            assert!(period <= 12 * SEC, "seed {seed}: {period:?} above 12 s");
        }
    }

    #[test]
    fn stale_rate_limit_extends_open() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        let late = breaker.try_acquire(base).unwrap();
        open_by_failures(&mut breaker, base);
        breaker.record_rate_limited(late, at(base, 5), Some(60 * SEC));
        assert_eq!(breaker.next_probe_at(at(base, 5)), Some(at(base, 65)));
        assert_eq!(
            breaker.consecutive_opens(),
            1,
            "same open period, not a new one"
        );
    }

    #[test]
    fn daily_quota_opens_until_instant() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        let permit = breaker.try_acquire(base).unwrap();
        let reset = at(base, 5 * 3600);
        breaker.record_daily_quota(permit, base, reset);
        assert_eq!(breaker.state(at(base, 5 * 3600 - 1)), BreakerState::Open);
        assert_eq!(breaker.next_probe_at(base), Some(reset));
        assert_eq!(breaker.state(reset), BreakerState::HalfOpen);
    }

    #[test]
    fn backoff_doubles_until_cap() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        open_by_failures(&mut breaker, base);
        let mut now = base;
        let mut periods = Vec::new();
        for _ in 0..5 {
            let probe = breaker.next_probe_at(now).unwrap();
            periods.push((probe - now).as_secs());
            now = probe;
            let trial = breaker.try_acquire(now).unwrap();
            breaker.record_failure(trial, now);
        }
        assert_eq!(periods, vec![10, 20, 40, 80, 80]);
        assert_eq!(breaker.consecutive_opens(), 6);
    }

    #[test]
    fn backoff_jitter_within_bounds() {
        let config = BreakerConfig {
            jitter: 0.2,
            ..exact_config()
        };
        let base = Instant::now();
        let mut factors_below_one = 0;
        let mut factors_above_one = 0;
        for seed in 0..200 {
            let mut breaker = CircuitBreaker::new(config.clone(), true, seed);
            open_by_failures(&mut breaker, base);
            let mut now = base;
            for opens in 1..=6u32 {
                let probe = breaker.next_probe_at(now).unwrap();
                let period = (probe - now).as_secs_f64();
                let nominal = config.open_period(opens).as_secs_f64();
                assert!(
                    period >= nominal * 0.8 - 1e-6,
                    "seed {seed}, open {opens}: {period}"
                );
                assert!(
                    period <= nominal * 1.2 + 1e-6,
                    "seed {seed}, open {opens}: {period}"
                );
                if period < nominal {
                    factors_below_one += 1;
                } else {
                    factors_above_one += 1;
                }
                now = probe;
                let trial = breaker.try_acquire(now).unwrap();
                breaker.record_failure(trial, now);
            }
        }
        assert!(factors_below_one > 100, "jitter shortens some periods");
        assert!(factors_above_one > 100, "jitter lengthens some periods");
    }

    #[test]
    fn jitter_same_for_same_seed() {
        let config = BreakerConfig {
            jitter: 0.2,
            ..exact_config()
        };
        let base = Instant::now();
        let probe_for = |seed| {
            let mut breaker = CircuitBreaker::new(config.clone(), true, seed);
            open_by_failures(&mut breaker, base);
            breaker.next_probe_at(base).unwrap()
        };
        assert_eq!(probe_for(7), probe_for(7));
        assert_ne!(probe_for(7), probe_for(8));
    }

    #[test]
    fn half_open_limits_concurrent_trials() {
        let base = Instant::now();
        let config = BreakerConfig {
            half_open_trials: 2,
            ..exact_config()
        };
        let mut breaker = CircuitBreaker::new(config, true, 1);
        open_by_failures(&mut breaker, base);
        let now = at(base, 10);
        let first = breaker.try_acquire(now).unwrap();
        let second = breaker.try_acquire(now).unwrap();
        assert!(first.is_trial());
        assert!(second.is_trial());
        let skip = breaker.try_acquire(now).unwrap_err();
        assert_eq!(skip.state, BreakerState::HalfOpen);
        assert_eq!(skip.next_probe_at, None);
        breaker.record_success(first, at(base, 11));
        assert_eq!(breaker.state(at(base, 11)), BreakerState::Closed);
        assert_eq!(breaker.consecutive_opens(), 0, "success resets the backoff");
        // The other trial is now stale and does not count.
        breaker.record_failure(second, at(base, 11));
        assert_eq!(breaker.window_counts(), (0, 0));
    }

    #[test]
    fn failed_trial_reopens_longer() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        open_by_failures(&mut breaker, base);
        let trial = breaker.try_acquire(at(base, 10)).unwrap();
        breaker.record_failure(trial, at(base, 11));
        assert_eq!(breaker.state(at(base, 11)), BreakerState::Open);
        assert_eq!(breaker.next_probe_at(at(base, 11)), Some(at(base, 31)));
        assert_eq!(breaker.consecutive_opens(), 2);
    }

    #[test]
    fn slow_trial_reopens() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        open_by_failures(&mut breaker, base);
        let trial = breaker.try_acquire(at(base, 10)).unwrap();
        breaker.record_success(trial, at(base, 14));
        assert_eq!(breaker.state(at(base, 14)), BreakerState::Open);
        assert_eq!(breaker.next_probe_at(at(base, 14)), Some(at(base, 34)));
    }

    #[test]
    fn neutral_trial_closes() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        open_by_failures(&mut breaker, base);
        let trial = breaker.try_acquire(at(base, 10)).unwrap();
        breaker.record_neutral(trial, at(base, 10));
        assert_eq!(breaker.state(at(base, 10)), BreakerState::Closed);
    }

    #[test]
    fn success_after_closing_counts_fresh() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        open_by_failures(&mut breaker, base);
        let trial = breaker.try_acquire(at(base, 10)).unwrap();
        breaker.record_success(trial, at(base, 10));
        open_by_failures(&mut breaker, at(base, 20));
        assert_eq!(breaker.consecutive_opens(), 1);
        assert_eq!(breaker.next_probe_at(at(base, 20)), Some(at(base, 30)));
    }

    #[test]
    fn stuck_trial_fails_at_max_wait() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        open_by_failures(&mut breaker, base);
        let stuck = breaker.try_acquire(at(base, 10)).unwrap();
        assert!(
            breaker.try_acquire(at(base, 15)).is_err(),
            "the only slot is taken"
        );
        assert_eq!(breaker.state(at(base, 19)), BreakerState::HalfOpen);
        // At 10 + 10 s the trial counts as failed and the breaker reopens for 20 s.
        assert_eq!(breaker.state(at(base, 20)), BreakerState::Open);
        assert_eq!(breaker.next_probe_at(at(base, 20)), Some(at(base, 40)));
        // The computed view matches what a mutating call stores.
        let skip = breaker.try_acquire(at(base, 25)).unwrap_err();
        assert_eq!(skip.state, BreakerState::Open);
        assert_eq!(skip.next_probe_at, Some(at(base, 40)));
        assert_eq!(breaker.consecutive_opens(), 2);
        // The late report is ignored.
        breaker.record_success(stuck, at(base, 26));
        assert_eq!(breaker.state(at(base, 26)), BreakerState::Open);
        // The slot is free once the new period ends.
        let trial = breaker.try_acquire(at(base, 40)).unwrap();
        breaker.record_success(trial, at(base, 40));
        assert_eq!(breaker.state(at(base, 40)), BreakerState::Closed);
    }

    #[test]
    fn stuck_trial_computed_with_jitter() {
        let config = BreakerConfig {
            jitter: 0.2,
            ..exact_config()
        };
        let base = Instant::now();
        for seed in 0..20 {
            let mut breaker = CircuitBreaker::new(config.clone(), true, seed);
            open_by_failures(&mut breaker, base);
            let probe = breaker.next_probe_at(base).unwrap();
            let _stuck = breaker.try_acquire(probe).unwrap();
            let later = probe + 15 * SEC;
            let computed = breaker.next_probe_at(later);
            let skip = breaker.try_acquire(later).unwrap_err();
            assert_eq!(skip.next_probe_at, computed, "seed {seed}");
        }
    }

    #[test]
    fn isolate_and_release() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        fail_once(&mut breaker, base);
        let in_flight = breaker.try_acquire(base).unwrap();
        breaker.isolate();
        assert_eq!(breaker.state(base), BreakerState::Isolated);
        let skip = breaker.try_acquire(at(base, 3600)).unwrap_err();
        assert_eq!(skip.state, BreakerState::Isolated);
        assert_eq!(skip.next_probe_at, None);
        breaker.record_failure(in_flight, base);
        breaker.release(at(base, 1));
        assert_eq!(breaker.state(at(base, 1)), BreakerState::Closed);
        assert_eq!(
            breaker.window_counts(),
            (0, 0),
            "release starts a clean window"
        );
    }

    #[test]
    fn release_force_closes_open() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        open_by_failures(&mut breaker, base);
        breaker.release(at(base, 1));
        assert_eq!(breaker.state(at(base, 1)), BreakerState::Closed);
        assert_eq!(breaker.consecutive_opens(), 0);
    }

    #[test]
    fn permit_reported_after_release_ignored() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        let old = breaker.try_acquire(base).unwrap();
        breaker.isolate();
        breaker.release(base);
        breaker.record_rate_limited(old, base, Some(60 * SEC));
        assert_eq!(breaker.state(base), BreakerState::Closed);
    }

    #[test]
    fn no_credentials_never_grants() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), false, 1);
        for secs in [0, 10, 3600, 86_400] {
            let skip = breaker.try_acquire(at(base, secs)).unwrap_err();
            assert_eq!(skip.state, BreakerState::NoCredentials);
            assert_eq!(skip.next_probe_at, None);
        }
        breaker.isolate();
        breaker.release(base);
        breaker.reset_disabled();
        assert_eq!(breaker.state(base), BreakerState::NoCredentials);
        assert!(breaker.try_acquire(base).is_err());
    }

    #[test]
    fn disabled_never_grants() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        let permit = breaker.try_acquire(base).unwrap();
        breaker.record_auth_error(permit, "401 invalid API key");
        assert_eq!(breaker.state(base), BreakerState::Disabled);
        assert_eq!(breaker.disabled_detail(), Some("401 invalid API key"));
        for secs in [0, 600, 86_400 * 365] {
            let skip = breaker.try_acquire(at(base, secs)).unwrap_err();
            assert_eq!(skip.state, BreakerState::Disabled);
        }
        breaker.release(base);
        assert_eq!(
            breaker.state(base),
            BreakerState::Disabled,
            "release keeps disabled"
        );
        breaker.reset_disabled();
        assert_eq!(breaker.state(base), BreakerState::Closed);
        assert_eq!(breaker.disabled_detail(), None);
        assert!(breaker.try_acquire(base).is_ok());
    }

    #[test]
    fn auth_error_from_stale_permit_disables() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        let late = breaker.try_acquire(base).unwrap();
        open_by_failures(&mut breaker, base);
        breaker.record_auth_error(late, "plan does not include this endpoint");
        assert_eq!(breaker.state(base), BreakerState::Disabled);
    }

    #[test]
    fn isolate_over_disabled_shows_disabled() {
        let base = Instant::now();
        let mut breaker = CircuitBreaker::new(exact_config(), true, 1);
        let permit = breaker.try_acquire(base).unwrap();
        breaker.record_auth_error(permit, "403");
        breaker.isolate();
        assert_eq!(breaker.state(base), BreakerState::Disabled);
        breaker.reset_disabled();
        assert_eq!(breaker.state(base), BreakerState::Isolated);
    }

    #[test]
    fn zero_config_values_tolerated() {
        let base = Instant::now();
        let config = BreakerConfig {
            min_calls: 0,
            window: 0,
            failure_rate: f64::NAN,
            slow_call: Duration::ZERO,
            base_open: Duration::ZERO,
            max_open: Duration::ZERO,
            jitter: f64::INFINITY,
            half_open_trials: 0,
            half_open_max_wait: Duration::ZERO,
        };
        let mut breaker = CircuitBreaker::new(config, true, 1);
        let permit = breaker.try_acquire(base).unwrap();
        breaker.record_rate_limited(permit, base, None);
        assert_eq!(breaker.state(base), BreakerState::HalfOpen);
        let trial = breaker.try_acquire(base).unwrap();
        assert!(trial.is_trial());
        // With a zero maximum wait the trial is stuck at once, so its report is stale.
        breaker.record_failure(trial, base);
        assert_eq!(breaker.state(base), BreakerState::HalfOpen);
        breaker.release(base);
        let permit = breaker.try_acquire(base).unwrap();
        breaker.record_rate_limited(permit, base, Some(Duration::MAX));
        assert_eq!(breaker.state(base), BreakerState::Open);
        assert!(breaker.next_probe_at(base).is_some());
    }

    #[test]
    fn huge_periods_do_not_overflow() {
        let base = Instant::now();
        let config = BreakerConfig {
            base_open: Duration::MAX,
            max_open: Duration::MAX,
            jitter: 0.5,
            ..exact_config()
        };
        let mut breaker = CircuitBreaker::new(config, true, 3);
        open_by_failures(&mut breaker, base);
        assert!(breaker.next_probe_at(base).unwrap() > at(base, 86_400 * 365));
    }

    #[test]
    fn daily_reset_at_utc_midnight() {
        let evening = Utc.with_ymd_and_hms(2024, 3, 1, 23, 30, 0).unwrap();
        assert_eq!(
            until_next_daily_reset(evening, NaiveTime::MIN),
            Duration::from_secs(30 * 60)
        );
        let midnight = Utc.with_ymd_and_hms(2024, 3, 2, 0, 0, 0).unwrap();
        assert_eq!(
            until_next_daily_reset(midnight, NaiveTime::MIN),
            Duration::from_secs(86_400)
        );
        let seven = NaiveTime::from_hms_opt(7, 0, 0).unwrap();
        let morning = Utc.with_ymd_and_hms(2024, 3, 2, 6, 0, 0).unwrap();
        assert_eq!(
            until_next_daily_reset(morning, seven),
            Duration::from_secs(3600)
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Advance(u64),
        Acquire,
        Success(usize, u64),
        Failure(usize),
        Neutral(usize),
        RateLimited(usize, Option<u64>),
        DailyQuota(usize, u64),
        AuthError(usize),
        Isolate,
        Release,
        ResetDisabled,
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..30_000).prop_map(Op::Advance),
            6 => Just(Op::Acquire),
            3 => (any::<usize>(), 0u64..5_000).prop_map(|(i, ms)| Op::Success(i, ms)),
            3 => any::<usize>().prop_map(Op::Failure),
            1 => any::<usize>().prop_map(Op::Neutral),
            1 => (any::<usize>(), proptest::option::of(0u64..60_000))
                .prop_map(|(i, ms)| Op::RateLimited(i, ms)),
            1 => (any::<usize>(), 0u64..120_000).prop_map(|(i, ms)| Op::DailyQuota(i, ms)),
            1 => any::<usize>().prop_map(Op::AuthError),
            1 => Just(Op::Isolate),
            1 => Just(Op::Release),
            1 => Just(Op::ResetDisabled),
        ]
    }

    fn take_permit(permits: &mut Vec<CallPermit>, index: usize) -> Option<CallPermit> {
        if permits.is_empty() {
            None
        } else {
            let len = permits.len();
            Some(permits.swap_remove(index % len))
        }
    }

    proptest! {
        #[test]
        fn any_sequence_keeps_invariants(
            ops in proptest::collection::vec(op_strategy(), 0..80),
            has_credentials in proptest::bool::weighted(0.9),
            trials in 1u32..4,
            jitter in 0.0f64..0.5,
            seed in any::<u64>(),
        ) {
            let config = BreakerConfig {
                min_calls: 3,
                window: 6,
                failure_rate: 0.5,
                slow_call: Duration::from_millis(2_000),
                base_open: Duration::from_millis(1_000),
                max_open: Duration::from_millis(16_000),
                jitter,
                half_open_trials: trials,
                half_open_max_wait: Duration::from_millis(3_000),
            };
            let base = Instant::now();
            let mut now = base;
            let mut breaker = CircuitBreaker::new(config, has_credentials, seed);
            let mut permits: Vec<CallPermit> = Vec::new();
            for op in ops {
                match op {
                    Op::Advance(ms) => now += Duration::from_millis(ms),
                    Op::Acquire => {
                        let state = breaker.state(now);
                        let probe = breaker.next_probe_at(now);
                        match breaker.try_acquire(now) {
                            Ok(permit) => {
                                prop_assert!(
                                    matches!(state, BreakerState::Closed | BreakerState::HalfOpen),
                                    "granted in {state}"
                                );
                                prop_assert_eq!(permit.is_trial(), state == BreakerState::HalfOpen);
                                permits.push(permit);
                            }
                            Err(skip) => {
                                prop_assert_eq!(skip.state, state);
                                prop_assert_eq!(skip.next_probe_at, probe);
                                prop_assert!(state != BreakerState::Closed);
                            }
                        }
                        if state == BreakerState::Open {
                            prop_assert!(probe.is_some_and(|p| now < p));
                        }
                        if !has_credentials {
                            prop_assert_eq!(state, BreakerState::NoCredentials);
                        }
                        let open_trials = breaker.trials.len();
                        prop_assert!(open_trials <= trials as usize);
                    }
                    Op::Success(i, ms) => {
                        if let Some(permit) = take_permit(&mut permits, i) {
                            now += Duration::from_millis(ms);
                            breaker.record_success(permit, now);
                        }
                    }
                    Op::Failure(i) => {
                        if let Some(permit) = take_permit(&mut permits, i) {
                            breaker.record_failure(permit, now);
                        }
                    }
                    Op::Neutral(i) => {
                        if let Some(permit) = take_permit(&mut permits, i) {
                            breaker.record_neutral(permit, now);
                        }
                    }
                    Op::RateLimited(i, ms) => {
                        if let Some(permit) = take_permit(&mut permits, i) {
                            let wait = ms.map(Duration::from_millis);
                            breaker.record_rate_limited(permit, now, wait);
                        }
                    }
                    Op::DailyQuota(i, ms) => {
                        if let Some(permit) = take_permit(&mut permits, i) {
                            let until = now + Duration::from_millis(ms);
                            breaker.record_daily_quota(permit, now, until);
                        }
                    }
                    Op::AuthError(i) => {
                        if let Some(permit) = take_permit(&mut permits, i) {
                            breaker.record_auth_error(permit, "401");
                        }
                    }
                    Op::Isolate => breaker.isolate(),
                    Op::Release => breaker.release(now),
                    Op::ResetDisabled => breaker.reset_disabled(),
                }
                let (calls, failures) = breaker.window_counts();
                prop_assert!(failures <= calls && calls <= 6);
            }
        }
    }
}
