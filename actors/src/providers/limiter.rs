//! Per-provider rate limits: a sliding-window log per documented quota window.
//!
//! # Guarantee
//!
//! For each quota of `count` calls per `per`, at most `count` calls are granted in any
//! half-open interval `[t, t + per)`, and up to `count` calls may be granted at once. A call is
//! granted only when every window of its provider has room, and is then counted in all of
//! them. A rejected call changes no window, so it uses up nothing. A window has room when it
//! contains fewer than `count` grants younger than `per`. It grants again at the instant its
//! oldest grant turns `per` old, so the full sustained rate of `count` per `per` is available.
//!
//! GCRA (as in governor) is not used because with a burst of `count` it refills one call every
//! `per / count`, so an interval of length `per` can contain `2 × count − 1` grants (measured:
//! 19 in one second at a quota of 10/s), and providers that count calls per window reject the
//! excess with 429.
//!
//! # Cost
//!
//! Each window keeps the instants of its grants still younger than `per` in a ring buffer
//! allocated when the limiter is built, so [`ProviderLimiter::check`] does not allocate: it
//! takes one mutex shared by the provider's windows, reads the clock once and does a constant
//! amount of work per window plus one step per grant that has aged out.
//!
//! The buffer has room for `min(count, 4097)` entries. A window with a `count` above 4096
//! records each grant at its instant rounded up to a multiple of `per / 4096` (rounded up to
//! whole nanoseconds), and grants made at the same recorded instant share one entry. Such a
//! window keeps the guarantee, because a grant counts from an instant no earlier than its real
//! one, but may reject a call for up to `per / 4096` longer than an exact log would. Windows
//! with a `count` of 4096 or less record exact instants.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(60 * 60);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Unit names accepted by [`Quota::parse`], with the period each one stands for.
const UNITS: [(&str, Duration); 11] = [
    ("s", SECOND),
    ("sec", SECOND),
    ("second", SECOND),
    ("m", MINUTE),
    ("min", MINUTE),
    ("minute", MINUTE),
    ("h", HOUR),
    ("hr", HOUR),
    ("hour", HOUR),
    ("d", DAY),
    ("day", DAY),
];

/// A provider's limit of `count` calls per `per`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// Calls allowed per period, which is also the maximum burst.
    pub count: u32,
    /// Length of the period.
    pub per: Duration,
}

impl Quota {
    /// Creates a quota of `count` calls per `per`.
    pub const fn new(count: u32, per: Duration) -> Self {
        Quota { count, per }
    }

    /// Parses `COUNT/UNIT` or `COUNT/NUNIT`, such as `60/min`, `30/s`, `800/day` or `100/15m`.
    ///
    /// `COUNT` and the optional multiplier `N` are positive whole numbers. `UNIT` is one of
    /// `s`, `sec`, `second`, `m`, `min`, `minute`, `h`, `hr`, `hour`, `d` or `day`, in any
    /// case, and names of two or more letters may take a plural `s`. Spaces around the parts
    /// are ignored. The error message names the rejected value and the accepted forms.
    pub fn parse(text: &str) -> Result<Quota, String> {
        let invalid = |reason: &str| {
            format!(
                "invalid rate limit {text:?}: {reason}; expected COUNT/UNIT with a positive \
                 whole COUNT and UNIT one of s, min, h or day, optionally with a multiplier \
                 (for example 30/s, 60/min, 800/day, 100/15min)"
            )
        };

        let (count_text, period_text) =
            text.split_once('/').ok_or_else(|| invalid("missing '/'"))?;
        let count: u32 = count_text
            .trim()
            .parse()
            .map_err(|_| invalid("the count is not a whole number from 1 to 4294967295"))?;
        if count == 0 {
            return Err(invalid("the count must be at least 1"));
        }

        let period_text = period_text.trim().to_ascii_lowercase();
        let unit_start = period_text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| invalid("missing unit"))?;
        let (multiplier_text, unit) = period_text.split_at(unit_start);
        let multiplier: u32 = if multiplier_text.is_empty() {
            1
        } else {
            multiplier_text
                .parse()
                .map_err(|_| invalid("the period multiplier is too large"))?
        };
        if multiplier == 0 {
            return Err(invalid("the period multiplier must be at least 1"));
        }
        let unit = unit.trim();
        let singular = match unit.strip_suffix('s') {
            Some(stem) if stem.len() > 1 => stem,
            _ => unit,
        };
        let unit_period = UNITS
            .iter()
            .find(|(name, _)| *name == unit || *name == singular)
            .map(|(_, period)| *period)
            .ok_or_else(|| invalid("unknown unit"))?;

        Ok(Quota {
            count,
            per: unit_period * multiplier,
        })
    }
}

impl FromStr for Quota {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Quota::parse(text)
    }
}

impl fmt::Display for Quota {
    /// Writes the form [`Quota::parse`] reads (`30/s`, `60/min`, `800/day`, `100/15min`) for
    /// whole-second periods, and `COUNT/{per:?}` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.count;
        let per = self.per;
        if per.subsec_nanos() != 0 || per.is_zero() {
            return write!(f, "{count}/{per:?}");
        }
        let secs = per.as_secs();
        let (amount, unit) = if secs % DAY.as_secs() == 0 {
            (secs / DAY.as_secs(), "day")
        } else if secs % HOUR.as_secs() == 0 {
            (secs / HOUR.as_secs(), "h")
        } else if secs % MINUTE.as_secs() == 0 {
            (secs / MINUTE.as_secs(), "min")
        } else {
            (secs, "s")
        };
        if amount == 1 {
            write!(f, "{count}/{unit}")
        } else {
            write!(f, "{count}/{amount}{unit}")
        }
    }
}

/// Returns the default limits of a provider id, or an empty list (no limit) for an id not
/// listed here. Free-tier limits as the providers document them, or as observed for Yahoo,
/// which documents none.
pub fn default_quotas(provider: &str) -> Vec<Quota> {
    match provider {
        "alpaca" => vec![Quota::new(200, MINUTE)],
        "finnhub" => vec![Quota::new(30, SECOND), Quota::new(60, MINUTE)],
        "twelvedata" => vec![Quota::new(8, MINUTE), Quota::new(800, DAY)],
        "alphavantage" => vec![Quota::new(5, MINUTE), Quota::new(25, DAY)],
        "rapidapi" => vec![Quota::new(5, MINUTE)],
        "yahoo" => vec![Quota::new(30, MINUTE)],
        _ => Vec::new(),
    }
}

/// Largest `count` whose window records exact grant instants, and the number of steps a
/// larger window's `per` is divided into.
const EXACT_MAX: u32 = 4096;

/// Source of the current time for a [`ProviderLimiter`].
///
/// Successive readings should not decrease. A grant read at an instant earlier than the
/// window's newest grant is recorded at that newest grant's instant, so the guarantee holds,
/// but a log may then grow beyond its preallocated capacity.
pub trait LimiterClock {
    /// Returns the current instant.
    fn now(&self) -> Instant;
}

/// The system's monotonic clock, [`Instant::now`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RealClock;

impl LimiterClock for RealClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Test clock that moves only when [`advance`](Self::advance) is called. Clones share one
/// time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    start: Instant,
    /// Nanoseconds since `start`.
    elapsed: Arc<AtomicU64>,
}

impl ManualClock {
    /// Creates a clock reading the current real instant, which stays fixed until advanced.
    pub fn new() -> Self {
        ManualClock {
            start: Instant::now(),
            elapsed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Moves the time of this clock and of all its clones forward by `by`, saturating after
    /// about 584 years.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .elapsed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |elapsed| {
                Some(elapsed.saturating_add(by))
            });
    }

    /// Time the clock has been advanced by since it was created.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed.load(Ordering::Acquire))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl LimiterClock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.elapsed()
    }
}

/// Grants of one window recorded at the same instant.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Nanoseconds after the limiter's origin.
    at: u64,
    /// Grants recorded at `at`, at least 1.
    grants: u32,
}

/// The sliding-window log of one quota. Times are nanoseconds after the limiter's origin.
#[derive(Debug)]
struct Window {
    /// Grants allowed in any interval of length `per`. A count of 0 never grants.
    count: u32,
    /// Length of the window in ns, at least 1. Periods of 584 years or more are `u64::MAX`.
    per: u64,
    /// Rounding of recorded instants in ns: grants are recorded at their instant rounded up to
    /// a multiple of `step`, so 1 records exact instants.
    step: u64,
    /// Grants younger than `per` at the last pruning, oldest first, at strictly increasing
    /// instants. With a clock that does not go back it never has more than
    /// `min(count, exact_max + 1)` entries, the capacity allocated at construction.
    log: VecDeque<Entry>,
    /// Sum of `grants` over `log`, at most `count`.
    granted: u32,
}

impl Window {
    /// Creates the window of `quota`, whose `per` is not zero. Counts above `exact_max` round
    /// grant instants up to multiples of `per / exact_max`.
    fn new(quota: &Quota, exact_max: u32) -> Self {
        let per = u64::try_from(quota.per.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        let step = if quota.count <= exact_max {
            1
        } else {
            per.div_ceil(u64::from(exact_max))
        };
        // With rounding, the entries younger than `per` lie on distinct multiples of `step`
        // in an interval shorter than `per + step <= (exact_max + 1) * step`.
        let capacity = quota.count.min(exact_max.saturating_add(1));
        Window {
            count: quota.count,
            per,
            step,
            log: VecDeque::with_capacity(capacity as usize),
            granted: 0,
        }
    }

    /// Drops the grants that are at least `per` old at `now`.
    fn prune(&mut self, now: u64) {
        while let Some(oldest) = self.log.front() {
            if oldest.at.saturating_add(self.per) > now {
                break;
            }
            self.granted -= oldest.grants;
            self.log.pop_front();
        }
    }

    /// Returns how long after `now` the window has room for one grant (zero when it has room
    /// now), or `None` when it never has. Expects `prune(now)` first.
    fn wait(&self, now: u64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        if self.granted < self.count {
            return Some(0);
        }
        self.log
            .front()
            .map(|oldest| oldest.at.saturating_add(self.per).saturating_sub(now))
    }

    /// Records one grant at `now`. Expects the window to have room.
    fn record(&mut self, now: u64) {
        let mut at = now.div_ceil(self.step).saturating_mul(self.step);
        if let Some(newest) = self.log.back_mut() {
            at = at.max(newest.at);
            if newest.at == at {
                newest.grants += 1;
                self.granted += 1;
                return;
            }
        }
        self.log.push_back(Entry { at, grants: 1 });
        self.granted += 1;
    }
}

/// Reason a call was not granted.
enum Rejection {
    /// Every window has room again after this wait, unless other calls take it first.
    For(Duration),
    /// A window has a count of 0 and never grants.
    Forever,
}

/// Rate limits of one provider: a sliding-window log per quota, under one mutex.
///
/// Shareable between threads. See the module documentation for the guarantee and the cost of
/// [`check`](Self::check). Time comes from a [`LimiterClock`]: [`RealClock`] by default, or
/// [`ManualClock`] in tests.
pub struct ProviderLimiter<C: LimiterClock = RealClock> {
    /// Windows, one per quota with a non-zero period. Empty when there is no limit.
    windows: Mutex<Vec<Window>>,
    /// Whether `windows` is empty, so an unlimited limiter takes no lock.
    unlimited: bool,
    /// Quotas as given, without those with a zero period, for [`describe`](Self::describe).
    quotas: Vec<Quota>,
    clock: C,
    /// Instant that window times count from.
    origin: Instant,
}

impl ProviderLimiter<RealClock> {
    /// Creates a limiter with one window per quota, reading the system's monotonic clock.
    ///
    /// A quota with a `per` of zero sets no limit and is left out. A quota with a `count` of
    /// 0 never grants, so [`check`](Self::check) always returns false and
    /// [`until_ready`](Self::until_ready) never completes. An empty list sets no limit.
    pub fn new(quotas: &[Quota]) -> Self {
        Self::with_clock(quotas, RealClock)
    }
}

impl<C: LimiterClock> ProviderLimiter<C> {
    /// Creates a limiter like [`ProviderLimiter::new`] that reads time from `clock`.
    pub fn with_clock(quotas: &[Quota], clock: C) -> Self {
        Self::with_exact_max(quotas, clock, EXACT_MAX)
    }

    /// Creates a limiter like [`with_clock`](Self::with_clock) whose windows with a `count`
    /// above `exact_max` round grant instants up to multiples of `per / exact_max`.
    fn with_exact_max(quotas: &[Quota], clock: C, exact_max: u32) -> Self {
        let quotas: Vec<Quota> = quotas
            .iter()
            .filter(|quota| !quota.per.is_zero())
            .cloned()
            .collect();
        let windows: Vec<Window> = quotas
            .iter()
            .map(|quota| Window::new(quota, exact_max))
            .collect();
        let origin = clock.now();
        ProviderLimiter {
            unlimited: windows.is_empty(),
            windows: Mutex::new(windows),
            quotas,
            clock,
            origin,
        }
    }

    /// Grants a call and returns true when every window has room now, recording the grant in
    /// each of them. Otherwise returns false and changes nothing. Does not sleep: it blocks
    /// only on the provider's mutex, which other calls hold for a few steps per window.
    pub fn check(&self) -> bool {
        self.try_acquire().is_ok()
    }

    /// Waits until a call is granted, as by [`check`](Self::check), sleeping between attempts
    /// until the windows that rejected it have room again. For the background refresher, not
    /// for callers that must return at once.
    ///
    /// Sleeps with `tokio::time::sleep`, so it needs a Tokio runtime with the time driver and
    /// a clock that advances with Tokio's timer, such as [`RealClock`]. Never completes when a
    /// quota has a count of 0. Cancel-safe: dropping the future before it completes takes no
    /// grant.
    pub async fn until_ready(&self) {
        loop {
            match self.try_acquire() {
                Ok(()) => return,
                Err(Rejection::For(wait)) => tokio::time::sleep(wait).await,
                Err(Rejection::Forever) => std::future::pending::<()>().await,
            }
        }
    }

    /// Returns the quotas as a list for display, such as `30/s, 60/min`, or `unlimited`.
    pub fn describe(&self) -> String {
        if self.quotas.is_empty() {
            return "unlimited".to_owned();
        }
        self.quotas
            .iter()
            .map(Quota::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Returns the quotas as given, without those with a zero period.
    pub fn quotas(&self) -> &[Quota] {
        &self.quotas
    }

    /// Records a grant in every window, or returns how long until all of them have room.
    fn try_acquire(&self) -> Result<(), Rejection> {
        if self.unlimited {
            return Ok(());
        }
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        // Read under the lock, so grants are recorded in the order of their instants.
        let now = self.clock.now().saturating_duration_since(self.origin);
        let now = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        let mut wait = 0;
        for window in windows.iter_mut() {
            window.prune(now);
            match window.wait(now) {
                Some(window_wait) => wait = wait.max(window_wait),
                None => return Err(Rejection::Forever),
            }
        }
        if wait > 0 {
            return Err(Rejection::For(Duration::from_nanos(wait)));
        }
        for window in windows.iter_mut() {
            window.record(now);
        }
        Ok(())
    }
}

impl<C: LimiterClock> fmt::Debug for ProviderLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderLimiter")
            .field("quotas", &self.describe())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn manual(quotas: &[Quota]) -> (ProviderLimiter<ManualClock>, ManualClock) {
        let clock = ManualClock::new();
        (ProviderLimiter::with_clock(quotas, clock.clone()), clock)
    }

    fn count_granted<C: LimiterClock>(limiter: &ProviderLimiter<C>, attempts: usize) -> usize {
        (0..attempts).filter(|_| limiter.check()).count()
    }

    /// Allocated capacity of each window's log.
    fn capacities<C: LimiterClock>(limiter: &ProviderLimiter<C>) -> Vec<usize> {
        let windows = limiter.windows.lock().unwrap();
        windows.iter().map(|window| window.log.capacity()).collect()
    }

    /// Asserts that no half-open interval of length `per` contains more than `count` of
    /// `granted` (instants in ns, ascending). The busiest interval starts at a grant, so only
    /// those starts are checked.
    fn assert_within(granted: &[u64], quota: &Quota) {
        let per = quota.per.as_nanos() as u64;
        let mut end = 0;
        for (first, &start) in granted.iter().enumerate() {
            while end < granted.len() && granted[end] - start < per {
                end += 1;
            }
            let inside = end - first;
            assert!(
                inside <= quota.count as usize,
                "{inside} grants in [{start}, {start} + {per}) ns under {quota}"
            );
        }
    }

    #[test]
    fn burst_of_count_then_reject() {
        let (limiter, clock) = manual(&[Quota::new(5, MINUTE)]);
        assert_eq!(count_granted(&limiter, 5), 5);
        assert!(!limiter.check());
        clock.advance(MINUTE - Duration::from_nanos(1));
        assert_eq!(
            count_granted(&limiter, 10),
            0,
            "1 ns before the burst ages out"
        );
        clock.advance(Duration::from_nanos(1));
        assert_eq!(count_granted(&limiter, 10), 5, "the whole burst aged out");
    }

    #[test]
    fn burst_with_real_clock() {
        let limiter = ProviderLimiter::new(&[Quota::new(4, MINUTE)]);
        assert_eq!(count_granted(&limiter, 10), 4);
    }

    #[test]
    fn grants_again_when_oldest_leaves() {
        let (limiter, clock) = manual(&[Quota::new(3, 10 * SECOND)]);
        // Grants at 0 s, 1 s and 2 s.
        for _ in 0..3 {
            assert!(limiter.check());
            clock.advance(SECOND);
        }
        // At 3 s to 9 s the window is full.
        for _ in 3..10 {
            assert!(!limiter.check(), "at {:?}", clock.elapsed());
            clock.advance(SECOND);
        }
        // The grant of 0 s leaves at exactly 10 s, that of 1 s at 11 s.
        assert_eq!(clock.elapsed(), 10 * SECOND);
        assert!(limiter.check(), "at 10 s");
        assert!(!limiter.check(), "one slot freed at 10 s");
        clock.advance(SECOND - Duration::from_nanos(1));
        assert!(!limiter.check(), "1 ns before 11 s");
        clock.advance(Duration::from_nanos(1));
        assert!(limiter.check(), "at 11 s");
        assert!(!limiter.check());
    }

    #[test]
    fn tighter_window_governs() {
        for quotas in [
            [Quota::new(3, SECOND), Quota::new(5, MINUTE)],
            [Quota::new(5, MINUTE), Quota::new(3, SECOND)],
        ] {
            let (limiter, clock) = manual(&quotas);
            assert_eq!(count_granted(&limiter, 10), 3, "per-second burst");
            clock.advance(SECOND);
            assert_eq!(count_granted(&limiter, 10), 2, "per-minute total of 5");
            clock.advance(SECOND);
            assert_eq!(count_granted(&limiter, 10), 0, "per-minute window full");
            // At 60 s the three grants of 0 s leave the minute window.
            clock.advance(58 * SECOND);
            assert_eq!(count_granted(&limiter, 10), 3, "at 60 s");
            // At 61 s the two grants of 1 s leave it.
            clock.advance(SECOND);
            assert_eq!(count_granted(&limiter, 10), 2, "at 61 s");
        }
    }

    #[test]
    fn rejected_calls_consume_nothing() {
        for quotas in [
            [Quota::new(2, SECOND), Quota::new(4, MINUTE)],
            [Quota::new(4, MINUTE), Quota::new(2, SECOND)],
        ] {
            let (limiter, clock) = manual(&quotas);
            assert_eq!(count_granted(&limiter, 2), 2);
            assert_eq!(count_granted(&limiter, 50), 0);
            clock.advance(SECOND);
            assert_eq!(
                count_granted(&limiter, 50),
                2,
                "minute slots kept: {quotas:?}"
            );
            for _ in 2..60 {
                clock.advance(SECOND);
                assert_eq!(
                    count_granted(&limiter, 50),
                    0,
                    "minute window full: {quotas:?}"
                );
            }
            clock.advance(SECOND);
            assert_eq!(count_granted(&limiter, 50), 2, "at 60 s: {quotas:?}");
        }
    }

    #[test]
    fn rejection_by_one_window_keeps_the_others() {
        // One call fills both windows; the per-second window must still have room at 60 s
        // after 59 calls rejected by the per-minute window.
        let (limiter, clock) = manual(&[Quota::new(1, SECOND), Quota::new(1, MINUTE)]);
        assert!(limiter.check());
        for _ in 0..59 {
            clock.advance(SECOND);
            assert!(!limiter.check());
        }
        clock.advance(SECOND);
        assert!(limiter.check());
    }

    #[test]
    fn twelvedata_defaults_over_36_hours() {
        let per_minute = Quota::new(8, MINUTE);
        let per_day = Quota::new(800, DAY);
        for quotas in [[per_minute.clone(), per_day.clone()], [per_day, per_minute]] {
            let (limiter, clock) = manual(&quotas);
            let mut granted = Vec::new();
            // One call per second, at t = 0 s to 129,599 s.
            for second in 0..36 * 3600u64 {
                if limiter.check() {
                    granted.push(second);
                }
                clock.advance(SECOND);
            }
            // Seconds 0 to 7 of minutes 0 to 99 fill the day window (the last at 5,947 s).
            // Each of those grants leaves it 86,400 s later, when the minute window has room,
            // so the second day repeats the first and nothing is granted after 92,347 s.
            let first_day: Vec<u64> = (0..100)
                .flat_map(|minute| (0..8).map(move |second| minute * 60 + second))
                .collect();
            let expected: Vec<u64> = first_day
                .iter()
                .copied()
                .chain(first_day.iter().map(|t| t + 86_400))
                .collect();
            assert_eq!(granted.len(), 1600, "{quotas:?}");
            assert_eq!(granted, expected, "{quotas:?}");
        }
    }

    #[test]
    fn zero_count_never_grants() {
        let (limiter, clock) = manual(&[Quota::new(0, MINUTE), Quota::new(5, SECOND)]);
        assert!(!limiter.check());
        clock.advance(DAY);
        assert!(!limiter.check());
    }

    #[test]
    fn no_quota_is_unlimited() {
        let (limiter, _clock) = manual(&[]);
        assert_eq!(count_granted(&limiter, 1000), 1000);
        assert_eq!(limiter.describe(), "unlimited");
        let (zero_period, _clock) = manual(&[Quota::new(5, Duration::ZERO)]);
        assert_eq!(count_granted(&zero_period, 100), 100);
        assert_eq!(zero_period.describe(), "unlimited");
    }

    #[test]
    fn large_count_rounds_and_stays_bounded() {
        let quota = Quota::new(10_000, SECOND);
        let (limiter, clock) = manual(std::slice::from_ref(&quota));
        let capacity = capacities(&limiter);
        assert!(capacity[0] > EXACT_MAX as usize);
        assert_eq!(
            count_granted(&limiter, 10_001),
            10_000,
            "burst of the full count"
        );
        let mut granted = vec![0; 10_000];
        // One call every 50 µs for 3 s.
        for call in 1..=60_000u64 {
            clock.advance(Duration::from_micros(50));
            if limiter.check() {
                granted.push(call * 50_000);
            }
        }
        assert_within(&granted, &quota);
        // The burst at 0 s, 10,000 grants from 1 s on, when the burst leaves the window, and
        // 10,000 from about 2 s on as those leave, each up to one step (244,141 ns) late.
        assert_eq!(granted.len(), 30_000);
        let windows = limiter.windows.lock().unwrap();
        assert!(windows[0].log.len() <= EXACT_MAX as usize + 1);
        drop(windows);
        assert_eq!(capacities(&limiter), capacity, "the log never grew");
    }

    #[test]
    fn concurrent_checks_grant_exactly_count() {
        let limiter = ProviderLimiter::new(&[Quota::new(1000, MINUTE), Quota::new(5000, DAY)]);
        let granted: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| count_granted(&limiter, 400)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(granted, 1000);
    }

    #[test]
    fn describe_lists_quotas_in_order() {
        let limiter = ProviderLimiter::new(&default_quotas("finnhub"));
        assert_eq!(limiter.describe(), "30/s, 60/min");
        let limiter = ProviderLimiter::new(&default_quotas("twelvedata"));
        assert_eq!(limiter.describe(), "8/min, 800/day");
        assert_eq!(
            format!("{limiter:?}"),
            "ProviderLimiter { quotas: \"8/min, 800/day\" }"
        );
    }

    #[test]
    fn default_quotas_per_provider() {
        let cases: [(&str, &[Quota]); 7] = [
            ("alpaca", &[Quota::new(200, MINUTE)]),
            ("finnhub", &[Quota::new(30, SECOND), Quota::new(60, MINUTE)]),
            ("twelvedata", &[Quota::new(8, MINUTE), Quota::new(800, DAY)]),
            (
                "alphavantage",
                &[Quota::new(5, MINUTE), Quota::new(25, DAY)],
            ),
            ("rapidapi", &[Quota::new(5, MINUTE)]),
            ("yahoo", &[Quota::new(30, MINUTE)]),
            ("unknown", &[]),
        ];
        for (provider, expected) in cases {
            assert_eq!(default_quotas(provider), expected, "{provider}");
        }
    }

    #[test]
    fn parse_accepted_forms() {
        let cases = [
            ("60/min", Quota::new(60, MINUTE)),
            ("30/s", Quota::new(30, SECOND)),
            ("800/day", Quota::new(800, DAY)),
            ("5/min", Quota::new(5, MINUTE)),
            ("8/min", Quota::new(8, MINUTE)),
            ("200/minute", Quota::new(200, MINUTE)),
            ("25/d", Quota::new(25, DAY)),
            ("100/h", Quota::new(100, HOUR)),
            ("100/hours", Quota::new(100, HOUR)),
            ("10/seconds", Quota::new(10, SECOND)),
            (" 60 / MIN ", Quota::new(60, MINUTE)),
            ("100/15m", Quota::new(100, 15 * MINUTE)),
            ("100/15min", Quota::new(100, 15 * MINUTE)),
            ("5/10s", Quota::new(5, 10 * SECOND)),
        ];
        for (text, expected) in cases {
            assert_eq!(Quota::parse(text), Ok(expected.clone()), "{text}");
            assert_eq!(text.parse::<Quota>(), Ok(expected), "{text}");
        }
    }

    #[test]
    fn parse_rejects_invalid() {
        let cases = [
            ("", "missing '/'"),
            ("60", "missing '/'"),
            ("/min", "not a whole number"),
            ("x/min", "not a whole number"),
            ("-1/s", "not a whole number"),
            ("1.5/s", "not a whole number"),
            ("0/min", "at least 1"),
            ("60/", "missing unit"),
            ("60/15", "missing unit"),
            ("60/fortnight", "unknown unit"),
            ("60/min/extra", "unknown unit"),
            ("60/0s", "multiplier must be at least 1"),
            ("60/99999999999s", "multiplier is too large"),
            ("99999999999/s", "not a whole number"),
        ];
        for (text, reason) in cases {
            let error = Quota::parse(text).expect_err(text);
            assert!(error.contains(&format!("{text:?}")), "{error}");
            assert!(error.contains(reason), "{text}: {error}");
            assert!(error.contains("30/s, 60/min, 800/day"), "{error}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "30/s",
            "60/min",
            "800/day",
            "100/h",
            "100/15min",
            "5/10s",
            "7/2day",
        ] {
            let quota = Quota::parse(text).unwrap();
            assert_eq!(quota.to_string(), text);
        }
        assert_eq!(
            Quota::new(3, Duration::from_millis(500)).to_string(),
            "3/500ms"
        );
        assert_eq!(Quota::new(3, 90 * SECOND).to_string(), "3/90s");
    }

    #[test]
    fn limiter_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ProviderLimiter>();
        assert_send_sync::<ProviderLimiter<ManualClock>>();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn until_ready_paces_calls() {
        let period = Duration::from_millis(300);
        let limiter = ProviderLimiter::new(&[Quota::new(3, period)]);
        let started = Instant::now();
        let mut offsets = Vec::new();
        for _ in 0..7 {
            limiter.until_ready().await;
            offsets.push(started.elapsed());
        }
        // Three at once, three when those leave the window, one when the second three do.
        for (index, offset) in offsets.iter().enumerate() {
            assert!(*offset >= period * (index as u32 / 3), "{offsets:?}");
        }
        assert!(offsets[2] < period, "{offsets:?}");
        assert!(offsets[6] < Duration::from_secs(2), "{offsets:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn until_ready_never_completes_at_count_zero() {
        let limiter = ProviderLimiter::new(&[Quota::new(0, SECOND)]);
        let waited = tokio::time::timeout(Duration::from_millis(50), limiter.until_ready()).await;
        assert!(waited.is_err());
    }

    /// Quotas of 1 to 3 windows with small counts and periods of 1 to 40 ms.
    fn quotas_strategy(max_count: u32) -> impl Strategy<Value = Vec<Quota>> {
        proptest::collection::vec(
            (1..=max_count, 1u64..=40)
                .prop_map(|(count, ms)| Quota::new(count, Duration::from_millis(ms))),
            1..=3,
        )
    }

    /// Gaps between calls in ms, often 0 so that bursts happen.
    fn gaps_strategy() -> impl Strategy<Value = Vec<u64>> {
        proptest::collection::vec(prop_oneof![2 => Just(0u64), 3 => 0u64..15], 0..300)
    }

    /// Runs the calls and returns each call's instant in ns and whether it was granted.
    fn run_calls(
        limiter: &ProviderLimiter<ManualClock>,
        clock: &ManualClock,
        gaps: &[u64],
    ) -> Vec<(u64, bool)> {
        gaps.iter()
            .map(|gap| {
                clock.advance(Duration::from_millis(*gap));
                (clock.elapsed().as_nanos() as u64, limiter.check())
            })
            .collect()
    }

    /// Grants among `granted` that are younger than `per` at `now`.
    fn younger_than(granted: &[u64], now: u64, per: u64) -> usize {
        granted.iter().filter(|&&at| now - at < per).count()
    }

    proptest! {
        /// With exact logs a call is granted exactly when each window contains fewer than
        /// `count` earlier grants younger than `per`, so no window exceeds its count and a
        /// rejection takes nothing that a later call could have had.
        #[test]
        fn exact_windows_match_the_sliding_window_model(
            quotas in quotas_strategy(6),
            gaps in gaps_strategy(),
        ) {
            let (limiter, clock) = manual(&quotas);
            let capacity = capacities(&limiter);
            let mut granted = Vec::new();
            for (now, was_granted) in run_calls(&limiter, &clock, &gaps) {
                let allowed = quotas.iter().all(|quota| {
                    younger_than(&granted, now, quota.per.as_nanos() as u64) < quota.count as usize
                });
                prop_assert_eq!(was_granted, allowed, "call at {} ns, grants {:?}", now, granted);
                if was_granted {
                    granted.push(now);
                }
            }
            for quota in &quotas {
                assert_within(&granted, quota);
            }
            prop_assert_eq!(capacities(&limiter), capacity);
        }

        /// With rounded logs no window exceeds its count, and a call is rejected only when a
        /// window contains `count` grants younger than `per` plus one rounding step.
        #[test]
        fn rounded_windows_keep_counts(
            quotas in quotas_strategy(8),
            gaps in gaps_strategy(),
            exact_max in 1u32..4,
        ) {
            let clock = ManualClock::new();
            let limiter = ProviderLimiter::with_exact_max(&quotas, clock.clone(), exact_max);
            let capacity = capacities(&limiter);
            let mut granted = Vec::new();
            for (now, was_granted) in run_calls(&limiter, &clock, &gaps) {
                if was_granted {
                    granted.push(now);
                } else {
                    let justified = quotas.iter().any(|quota| {
                        let per = quota.per.as_nanos() as u64;
                        let step = if quota.count <= exact_max { 1 } else { per.div_ceil(u64::from(exact_max)) };
                        younger_than(&granted, now, per + step) >= quota.count as usize
                    });
                    prop_assert!(justified, "call at {} ns rejected, grants {:?}", now, granted);
                }
            }
            for quota in &quotas {
                assert_within(&granted, quota);
            }
            prop_assert_eq!(capacities(&limiter), capacity);
        }
    }
}
