//! Per-provider rate limits: one governor GCRA limiter per documented quota window.
//!
//! A window of `count` calls per `per` allows a burst of `count` calls and then refills one
//! call every `per / count`. A call is allowed only when every window of the provider allows
//! it.
//!
//! governor 0.8 has no way to test a window without consuming a cell, so
//! [`ProviderLimiter::check`] avoids taking cells from some windows when another rejects by
//! choosing the order in which it queries them:
//!
//! 1. A window that rejected earlier is known to reject until the instant its rejection named,
//!    so until then `check` rejects without querying any window.
//! 2. Each grant reports how many more cells the window had left. Unless another caller took
//!    them, a window with cells left cannot reject the next call, because cells only come
//!    back over time. So windows that had none left are queried first, and the others
//!    afterwards. Among the former the longest refill interval goes first, because that
//!    window takes longest to get a cell back and so is the likeliest to reject.
//!
//! With a single caller, a rejected call therefore consumes nothing unless the last grant left
//! two or more windows without spare cells and one of them rejects after another granted.
//! Then each window that granted before the rejection loses one cell, which is at most one cell
//! with the two-window quotas of [`default_quotas`]. With concurrent callers any window can
//! reject after others granted, with the same loss of one cell per window queried before the
//! rejecting one.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, ReasonablyRealtime, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::RateLimiter;

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

    /// Interval in which one cell refills, at least 1 ns.
    fn refill_interval(&self) -> Duration {
        (self.per / self.count.max(1)).max(Duration::from_nanos(1))
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

type WindowLimiter<C> = RateLimiter<NotKeyed, InMemoryState, C, StateInformationMiddleware>;

/// One quota window and what earlier calls learned about it.
struct Window<C: Clock> {
    quota: Quota,
    /// `None` for a quota with a count of 0, which never grants.
    limiter: Option<WindowLimiter<C>>,
    /// Cells the window had left after its last grant, a lower bound of what it has now.
    /// Set to 0 by a rejection.
    spare: AtomicU32,
    /// Nanoseconds after the limiter's origin before which the window rejects, as named by
    /// its last rejection. `u64::MAX` means never.
    blocked_until: AtomicU64,
}

/// Outcome of requesting a cell from one window.
enum Rejection {
    /// The window may grant after this wait.
    For(Duration),
    /// The window never grants.
    Forever,
}

/// Rate limits of one provider, one governor direct limiter per quota window.
///
/// Shareable between threads. [`check`](Self::check) takes no lock and does not allocate:
/// it reads the clock once, does an atomic load per window and one governor check per window
/// it queries. The clock is governor's default, or any governor [`Clock`] for tests.
pub struct ProviderLimiter<C: Clock = DefaultClock> {
    /// Windows sorted by refill interval, longest first: the order in which windows without
    /// spare cells are queried.
    windows: Vec<Window<C>>,
    /// Quotas as given, for [`describe`](Self::describe).
    quotas: Vec<Quota>,
    clock: C,
    origin: C::Instant,
}

impl ProviderLimiter<DefaultClock> {
    /// Creates a limiter with one window per quota, using governor's default clock.
    ///
    /// A quota with a `per` of zero sets no limit and is left out. A quota with a `count` of
    /// 0 never grants, so [`check`](Self::check) always returns false and
    /// [`until_ready`](Self::until_ready) never completes. An empty list sets no limit.
    pub fn new(quotas: &[Quota]) -> Self {
        Self::with_clock(quotas, DefaultClock::default())
    }
}

impl<C: Clock + Clone> ProviderLimiter<C> {
    /// Creates a limiter like [`ProviderLimiter::new`] that reads time from `clock`, which
    /// every window shares through clones.
    pub fn with_clock(quotas: &[Quota], clock: C) -> Self {
        let origin = clock.now();
        let quotas: Vec<Quota> = quotas
            .iter()
            .filter(|q| !q.per.is_zero())
            .cloned()
            .collect();
        let mut windows: Vec<Window<C>> = quotas
            .iter()
            .map(|quota| Window::new(quota.clone(), clock.clone()))
            .collect();
        windows.sort_by_key(|window| {
            std::cmp::Reverse(match window.limiter {
                None => Duration::MAX,
                Some(_) => window.quota.refill_interval(),
            })
        });
        ProviderLimiter {
            windows,
            quotas,
            clock,
            origin,
        }
    }
}

impl<C: Clock> ProviderLimiter<C> {
    /// Takes a cell from every window and returns true, or returns false at once when any
    /// window rejects. See the module documentation for when a rejected call still consumes
    /// a cell.
    pub fn check(&self) -> bool {
        self.try_acquire().is_ok()
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

    /// Takes a cell from every window, or returns how long the rejecting window needs.
    fn try_acquire(&self) -> Result<(), Rejection> {
        let now = self.clock.now();
        let now_nanos = now.duration_since(self.origin).as_u64();

        // Rejections known from earlier calls cost no cell.
        let mut known_wait = 0u64;
        for window in &self.windows {
            let blocked_until = window.blocked_until.load(Ordering::Acquire);
            if blocked_until == u64::MAX {
                return Err(Rejection::Forever);
            }
            known_wait = known_wait.max(blocked_until.saturating_sub(now_nanos));
        }
        if known_wait > 0 {
            return Err(Rejection::For(Duration::from_nanos(known_wait)));
        }

        // Windows without spare cells first, then the others. The split is fixed before any
        // grant, because a grant updates `spare`.
        let mut empty_mask = 0u64;
        for (index, window) in self.windows.iter().enumerate().take(64) {
            if window.spare.load(Ordering::Acquire) == 0 {
                empty_mask |= 1 << index;
            }
        }
        let was_empty = |index: usize| index < 64 && empty_mask & (1 << index) != 0;
        for first_pass in [true, false] {
            for (index, window) in self.windows.iter().enumerate() {
                if was_empty(index) == first_pass {
                    window.acquire(now, self.origin)?;
                }
            }
        }
        Ok(())
    }
}

impl<C: Clock + ReasonablyRealtime> ProviderLimiter<C> {
    /// Waits until a [`check`](Self::check) succeeds, sleeping between attempts for the wait
    /// the rejecting window names. For the background refresher, not for callers that must
    /// return at once.
    ///
    /// Sleeps with `tokio::time::sleep`, so it needs a Tokio runtime with the time driver.
    /// Never completes when a quota has a count of 0.
    pub async fn until_ready(&self) {
        const MIN_SLEEP: Duration = Duration::from_millis(1);
        loop {
            match self.try_acquire() {
                Ok(()) => return,
                Err(Rejection::For(wait)) => tokio::time::sleep(wait.max(MIN_SLEEP)).await,
                Err(Rejection::Forever) => std::future::pending::<()>().await,
            }
        }
    }
}

impl<C: Clock> fmt::Debug for ProviderLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderLimiter")
            .field("quotas", &self.describe())
            .finish()
    }
}

impl<C: Clock> Window<C> {
    fn new(quota: Quota, clock: C) -> Self {
        match NonZeroU32::new(quota.count) {
            Some(burst) => {
                let governor_quota = governor::Quota::with_period(quota.refill_interval())
                    .expect("refill interval is at least 1 ns")
                    .allow_burst(burst);
                let limiter = RateLimiter::direct_with_clock(governor_quota, clock)
                    .with_middleware::<StateInformationMiddleware>();
                Window {
                    quota,
                    limiter: Some(limiter),
                    spare: AtomicU32::new(burst.get()),
                    blocked_until: AtomicU64::new(0),
                }
            }
            None => Window {
                quota,
                limiter: None,
                spare: AtomicU32::new(0),
                blocked_until: AtomicU64::new(u64::MAX),
            },
        }
    }

    /// Takes one cell and stores what the grant or rejection implies for later calls.
    fn acquire(&self, now: C::Instant, origin: C::Instant) -> Result<(), Rejection> {
        let Some(limiter) = &self.limiter else {
            return Err(Rejection::Forever);
        };
        match limiter.check() {
            Ok(snapshot) => {
                self.spare
                    .store(snapshot.remaining_burst_capacity(), Ordering::Release);
                Ok(())
            }
            Err(not_until) => {
                let earliest = not_until
                    .earliest_possible()
                    .duration_since(origin)
                    .as_u64();
                self.spare.store(0, Ordering::Release);
                self.blocked_until.fetch_max(earliest, Ordering::AcqRel);
                Err(Rejection::For(not_until.wait_time_from(now)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn fake(quotas: &[Quota]) -> (ProviderLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (ProviderLimiter::with_clock(quotas, clock.clone()), clock)
    }

    fn count_granted(limiter: &ProviderLimiter<FakeRelativeClock>, attempts: usize) -> usize {
        (0..attempts).filter(|_| limiter.check()).count()
    }

    #[test]
    fn burst_passes_exactly_quota() {
        let (limiter, _clock) = fake(&[Quota::new(5, MINUTE)]);
        assert_eq!(count_granted(&limiter, 5), 5);
        assert!(!limiter.check());
        assert!(!limiter.check());
    }

    #[test]
    fn burst_with_real_clock() {
        let limiter = ProviderLimiter::new(&[Quota::new(4, MINUTE)]);
        let granted = (0..10).filter(|_| limiter.check()).count();
        assert_eq!(granted, 4);
    }

    #[test]
    fn refills_one_cell_per_interval() {
        let (limiter, clock) = fake(&[Quota::new(6, MINUTE)]);
        assert_eq!(count_granted(&limiter, 10), 6);
        clock.advance(Duration::from_secs(9));
        assert!(!limiter.check(), "a cell takes 10 s to refill");
        clock.advance(Duration::from_secs(1));
        assert!(limiter.check());
        assert!(!limiter.check());
        clock.advance(MINUTE);
        assert_eq!(count_granted(&limiter, 10), 6);
    }

    #[test]
    fn tighter_window_governs() {
        let (limiter, clock) = fake(&[Quota::new(3, SECOND), Quota::new(5, MINUTE)]);
        assert_eq!(count_granted(&limiter, 10), 3, "per-second burst");
        clock.advance(SECOND);
        assert_eq!(count_granted(&limiter, 10), 2, "per-minute total of 5");
        clock.advance(SECOND);
        assert_eq!(
            count_granted(&limiter, 10),
            0,
            "per-minute window still empty"
        );
        clock.advance(Duration::from_secs(12));
        assert_eq!(
            count_granted(&limiter, 10),
            1,
            "one per-minute cell every 12 s"
        );
    }

    #[test]
    fn rejected_calls_consume_nothing() {
        for quotas in [
            [Quota::new(2, SECOND), Quota::new(4, MINUTE)],
            [Quota::new(4, MINUTE), Quota::new(2, SECOND)],
        ] {
            let (limiter, clock) = fake(&quotas);
            assert_eq!(count_granted(&limiter, 2), 2);
            assert_eq!(count_granted(&limiter, 50), 0);
            clock.advance(SECOND);
            assert_eq!(
                count_granted(&limiter, 50),
                2,
                "per-minute cells kept: {quotas:?}"
            );
            clock.advance(SECOND);
            assert_eq!(
                count_granted(&limiter, 50),
                0,
                "per-minute window empty: {quotas:?}"
            );
            clock.advance(Duration::from_secs(15));
            assert_eq!(
                count_granted(&limiter, 50),
                1,
                "one cell after 15 s: {quotas:?}"
            );
        }
    }

    #[test]
    fn both_windows_empty_keeps_cells() {
        // One call empties both windows; the per-second window refills first.
        let (limiter, clock) = fake(&[Quota::new(1, SECOND), Quota::new(1, MINUTE)]);
        assert!(limiter.check());
        for _ in 0..59 {
            clock.advance(SECOND);
            assert!(!limiter.check());
        }
        clock.advance(SECOND);
        assert!(limiter.check(), "the per-second window lost no cell");
    }

    #[test]
    fn daily_window_loses_no_cells() {
        let per_minute = Quota::new(8, MINUTE);
        let per_day = Quota::new(800, DAY);
        for quotas in [[per_minute.clone(), per_day.clone()], [per_day, per_minute]] {
            let (limiter, clock) = fake(&quotas);
            let mut granted = 0;
            // One call per second, at t = 0 s to 129,599 s (36 h).
            for _ in 0..(36 * 3600) {
                if limiter.check() {
                    granted += 1;
                }
                clock.advance(SECOND);
            }
            // The day window's burst of 800, plus one cell every 108 s at t = 108 s to
            // 129,492 s. Fewer would mean rejected calls took day cells.
            assert_eq!(granted, 800 + 1199, "{quotas:?}");
        }
    }

    #[test]
    fn zero_count_never_grants() {
        let (limiter, clock) = fake(&[Quota::new(0, MINUTE), Quota::new(5, SECOND)]);
        assert!(!limiter.check());
        clock.advance(DAY);
        assert!(!limiter.check());
    }

    #[test]
    fn no_quota_is_unlimited() {
        let (limiter, _clock) = fake(&[]);
        assert_eq!(count_granted(&limiter, 1000), 1000);
        assert_eq!(limiter.describe(), "unlimited");
        let (zero_period, _clock) = fake(&[Quota::new(5, Duration::ZERO)]);
        assert_eq!(count_granted(&zero_period, 100), 100);
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
    }

    #[tokio::test(flavor = "current_thread")]
    async fn until_ready_paces_calls() {
        let limiter = ProviderLimiter::new(&[Quota::new(5, SECOND)]);
        let started = std::time::Instant::now();
        for _ in 0..7 {
            limiter.until_ready().await;
        }
        let elapsed = started.elapsed();
        // Five cells at once, then one every 200 ms.
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    }
}
