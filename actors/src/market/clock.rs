//! The market clock: sends one `Tick` per step to quote_service and waits for the step to finish
//! before the next one, so every step's messages are handled in one order at any speed.

use std::time::{Duration, Instant};

use actix::Addr;
use chrono::{DateTime, Utc};
use neolight_messages::{Bar, LiveTick, StepError, Tick};
use tokio::sync::watch;
use tracing::info;

use super::sim::SimMarket;
use crate::quote_service::QuoteService;

/// End of a clock run.
#[derive(Debug, Clone, PartialEq)]
pub enum ClockEnd {
    /// Every step was played.
    Finished { steps: u64 },
    /// A stop was requested; `steps` were played.
    Stopped { steps: u64 },
}

/// Replay pacing: `None` plays as fast as the mesh goes.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub steps_per_second: Option<f64>,
}

/// Plays `steps` in order. Steps at or before `warm_until` are durable already: they are
/// re-derived without pacing.
pub async fn run_replay(
    quote_service: Addr<QuoteService>,
    steps: &[(DateTime<Utc>, Vec<Bar>)],
    pace: Pace,
    warm_until: Option<DateTime<Utc>>,
    mut stop: watch::Receiver<bool>,
) -> Result<ClockEnd, StepError> {
    let total = steps.len() as u64;
    let mut paced_start: Option<(Instant, u64)> = None;
    let mut last_log = Instant::now();
    let mut next_percent = 10;
    for (index, (time, bars)) in steps.iter().enumerate() {
        let step = index as u64 + 1;
        if *stop.borrow() {
            return Ok(ClockEnd::Stopped { steps: step - 1 });
        }
        let warm = warm_until.is_some_and(|t| *time <= t);
        if let (Some(rate), false) = (pace.steps_per_second, warm) {
            let (start, first) = *paced_start.get_or_insert((Instant::now(), step));
            let due = start + Duration::from_secs_f64((step - first) as f64 / rate);
            let now = Instant::now();
            if due > now {
                tokio::select! {
                    _ = tokio::time::sleep(due - now) => {}
                    _ = stop.changed() => return Ok(ClockEnd::Stopped { steps: step - 1 }),
                }
            }
        }

        let tick = Tick { step, time: *time, bars: bars.clone() };
        quote_service
            .send(tick)
            .await
            .map_err(|err| StepError::new(format!("quote_service did not take step {step}: {err}")))??;

        let percent = step * 100 / total.max(1);
        if percent >= next_percent || last_log.elapsed() >= Duration::from_secs(10) {
            info!(step, total, at = %time, "replay progress {percent}%");
            while next_percent <= percent {
                next_percent += 10;
            }
            last_log = Instant::now();
        }
    }
    Ok(ClockEnd::Finished { steps: total })
}

/// Runs `step` every `tick` of wall time until stopped; a late tick is delayed, not doubled.
async fn run_ticking<F, Fut>(tick: Duration, mut stop: watch::Receiver<bool>, mut step: F) -> Result<ClockEnd, StepError>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = Result<(), StepError>>,
{
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut steps = 0u64;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => return Ok(ClockEnd::Stopped { steps }),
        }
        if *stop.borrow() {
            return Ok(ClockEnd::Stopped { steps });
        }
        steps += 1;
        step(steps).await?;
    }
}

/// Ticks the sim market every `tick` of wall time until stopped.
pub async fn run_sim(
    quote_service: Addr<QuoteService>,
    mut market: SimMarket,
    tick: Duration,
    stop: watch::Receiver<bool>,
) -> Result<ClockEnd, StepError> {
    run_ticking(tick, stop, |step| {
        let time = Utc::now();
        let request = quote_service.send(Tick { step, time, bars: market.next_tick(time) });
        async move {
            request.await.map_err(|err| StepError::new(format!("quote_service did not take step {step}: {err}")))??;
            Ok(())
        }
    })
    .await
}

/// Steps the live market every `tick` of wall time with the quotes the refresher stored.
pub async fn run_live(quote_service: Addr<QuoteService>, tick: Duration, stop: watch::Receiver<bool>) -> Result<ClockEnd, StepError> {
    run_ticking(tick, stop, |step| {
        let request = quote_service.send(LiveTick { step, time: Utc::now() });
        async move {
            request.await.map_err(|err| StepError::new(format!("quote_service did not take step {step}: {err}")))??;
            Ok(())
        }
    })
    .await
}
