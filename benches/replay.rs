//! `cargo bench --bench replay`: bars per second through the whole mesh, replaying SPY, AAPL and
//! GOOG together as fast as the mesh goes.
//!
//! Timed: `run_replay` from the first step to the last, each step awaited through
//! quote_service, smart_trader, execution_router (paper broker), persistence and
//! intelligence_orchestrator. Untimed: parsing the price files (once), and per iteration
//! creating the data directory, opening the store, starting the actix system and the actors,
//! shutting them down and removing the directory.
//!
//! Before the timed runs, one untimed run per data-directory variant prints the store's
//! counters (flushes, new orders) and the steps with ledger records, read back from the ledger.
//! No tracing subscriber is installed, so the mesh logs nothing.
//!
//! Environment:
//! - `NEOLIGHT_SHARED_DATA`: directory holding `prices/mplfinance/` (default `../shared/data`
//!   beside the workspace). Without the files the bench prints why and exits 0.
//! - `NEOLIGHT_BENCH_DISK_DIR`: parent of the on-disk data directories (default `/var/tmp`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use criterion::{Criterion, SamplingMode, Throughput};
use neolight::config::{RunArgs, RunConfig};
use neolight::mesh::{run_identity, start_actors};
use neolight_actors::market::clock::{run_replay, ClockEnd, Pace};
use neolight_actors::market::price_file::{load_replay, ReplayData};
use neolight_actors::persistence::datadir::{DataDir, RunIdentity};
use neolight_actors::persistence::ledger::{Ledger, LedgerRecord};
use neolight_actors::persistence::{GetStoreStats, Store, StoreStats};
use neolight_messages::MarketSource;
use tokio::sync::watch;

const FILES: [(&str, &str); 3] = [
    ("SPY", "prices/mplfinance/yahoofinance-SPY-20080101-20180101.csv"),
    ("AAPL", "prices/mplfinance/yahoofinance-AAPL-20040819-20180120.csv"),
    ("GOOG", "prices/mplfinance/yahoofinance-GOOG-20040819-20180120.csv"),
];
const TMPFS_PARENT: &str = "/dev/shm";
const DISK_PARENT: &str = "/var/tmp";

/// The parsed replay and the settings every iteration starts from.
struct Replay {
    config: RunConfig,
    data: ReplayData,
    identity: RunIdentity,
}

/// One replay through a fresh mesh.
struct Outcome {
    elapsed: Duration,
    stats: StoreStats,
    dir: tempfile::TempDir,
}

fn shared_data() -> PathBuf {
    match std::env::var_os("NEOLIGHT_SHARED_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data")),
    }
}

/// Parses the three price files. The error names the missing file or the parse failure.
fn load() -> Result<Replay, String> {
    let root = shared_data();
    let mut replay = Vec::new();
    for (symbol, relative) in FILES {
        let path = root.join(relative);
        if !path.is_file() {
            return Err(format!("{} not found (set NEOLIGHT_SHARED_DATA to the directory holding prices/)", path.display()));
        }
        replay.push(format!("{symbol}={}", path.display()));
    }
    let args = RunArgs { replay, until_end: true, ..RunArgs::default() };
    let config = args.validate().map_err(|problems| problems.join("; "))?;
    let data = load_replay(&config.replay).map_err(|err| err.to_string())?;
    let identity = run_identity(&config, Some(&data));
    Ok(Replay { config, data, identity })
}

/// Filesystem type of the mount holding `path`, from `/proc/self/mounts`.
fn fs_type(path: &Path) -> Option<String> {
    let path = std::fs::canonicalize(path).ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut cells = line.split_whitespace();
            let (_, point, kind) = (cells.next()?, cells.next()?, cells.next()?);
            path.starts_with(point).then(|| (point.len(), kind.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, kind)| kind)
}

/// Starts a fresh mesh on a new data directory under `parent` and times one full replay.
fn replay_once(replay: &Replay, parent: &Path) -> Outcome {
    let dir = tempfile::Builder::new().prefix("neolight-bench-").tempdir_in(parent).expect("create the data directory");
    let data_dir = DataDir::open(dir.path(), &replay.identity, false).expect("open the data directory");
    let trading = &replay.config.trading;
    let (store, recovered) =
        Store::open(data_dir, MarketSource::Replay, trading.initial_cash, None).expect("open the store");
    let steps = &replay.data.steps;

    let system = System::new();
    let (elapsed, stats) = system.block_on(async {
        let mesh = start_actors(MarketSource::Replay, trading, &replay.config.universe, store, &recovered);
        // Lets every actor run its `started` before the clock starts.
        tokio::task::yield_now().await;
        let (_stop_tx, stop_rx) = watch::channel(false);
        let pace = Pace { steps_per_second: None };

        let start = Instant::now();
        let end = run_replay(mesh.quote_service.clone(), steps, pace, None, stop_rx).await;
        let elapsed = start.elapsed();

        match end {
            Ok(ClockEnd::Finished { steps: played }) if played == steps.len() as u64 => {}
            other => panic!("the replay did not finish all {} steps: {other:?}", steps.len()),
        }
        let stats = mesh.persistence.send(GetStoreStats).await.expect("persistence replies to GetStoreStats");
        (elapsed, stats)
    });
    // Dropping the runner drops the actors and the store.
    drop(system);
    Outcome { elapsed, stats, dir }
}

fn remove(dir: tempfile::TempDir) {
    let path = dir.path().to_path_buf();
    if let Err(err) = dir.close() {
        panic!("cannot remove {}: {err}", path.display());
    }
}

/// Distinct step times in the ledger of a finished run.
struct LedgerSteps {
    with_intents: usize,
    with_fills: usize,
    with_any_record: usize,
    fills: usize,
}

fn steps_with_records(data_dir: &Path) -> LedgerSteps {
    // sled's worker threads can hold its file lock briefly after the store is dropped (seen once
    // under load), so the reopen is retried for up to 5 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    let ledger = loop {
        match Ledger::open(&data_dir.join("ledger")) {
            Ok(ledger) => break ledger,
            Err(err) if Instant::now() >= deadline => panic!("cannot reopen the ledger: {err}"),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let contents = ledger.read_all().expect("read the ledger");
    let mut intent_times: BTreeSet<DateTime<Utc>> = BTreeSet::new();
    let mut fill_times: BTreeSet<DateTime<Utc>> = BTreeSet::new();
    let mut record_times: BTreeSet<DateTime<Utc>> = BTreeSet::new();
    let mut fills = 0;
    for (_, record) in &contents.records {
        match record {
            LedgerRecord::Intent { time, .. } => {
                intent_times.insert(*time);
                record_times.insert(*time);
            }
            LedgerRecord::Fill { fill } => {
                fills += 1;
                fill_times.insert(fill.timestamp);
                record_times.insert(fill.timestamp);
            }
            LedgerRecord::Cancel { time, .. } => {
                record_times.insert(*time);
            }
        }
    }
    LedgerSteps { with_intents: intent_times.len(), with_fills: fill_times.len(), with_any_record: record_times.len(), fills }
}

/// Runs one untimed replay on `parent` and prints the flush counters.
fn print_flushes(replay: &Replay, variant: &str, parent: &Path) {
    let outcome = replay_once(replay, parent);
    let ledger = steps_with_records(outcome.dir.path());
    let s = &outcome.stats;
    let per = |a: u64, b: usize| if b == 0 { f64::NAN } else { a as f64 / b as f64 };
    println!(
        "mesh/replay/{variant} flushes: steps {} | flushes {} | new_orders {} | flushes/new_orders {:.3} | \
         fills {} | steps with new orders {} | steps with fills {} | steps with any ledger record {} | \
         flushes/step with records {:.3} | one untimed run {:.1} ms",
        s.steps,
        s.flushes,
        s.new_orders,
        per(s.flushes, s.new_orders as usize),
        ledger.fills,
        ledger.with_intents,
        ledger.with_fills,
        ledger.with_any_record,
        per(s.flushes, ledger.with_any_record),
        outcome.elapsed.as_secs_f64() * 1e3,
    );
    remove(outcome.dir);
}

/// Checks that `parent` exists and is on the expected kind of filesystem, and prints why not.
fn usable(variant: &str, parent: &Path, want_tmpfs: bool) -> bool {
    let Some(kind) = fs_type(parent) else {
        println!("mesh/replay/{variant}: skipped, {} does not exist or its filesystem is unknown", parent.display());
        return false;
    };
    if (kind == "tmpfs") != want_tmpfs {
        println!("mesh/replay/{variant}: skipped, {} is on {kind}", parent.display());
        return false;
    }
    println!("mesh/replay/{variant}: data directories under {} ({kind})", parent.display());
    true
}

fn bench_replay(c: &mut Criterion, replay: &Replay) {
    let disk_parent = std::env::var_os("NEOLIGHT_BENCH_DISK_DIR").map_or_else(|| PathBuf::from(DISK_PARENT), PathBuf::from);
    let variants = [("tmpfs", PathBuf::from(TMPFS_PARENT), true, 10), ("disk", disk_parent, false, 15)];
    let variants: Vec<_> = variants.into_iter().filter(|(name, parent, tmpfs, _)| usable(name, parent, *tmpfs)).collect();
    for (name, parent, _, _) in &variants {
        print_flushes(replay, name, parent);
    }

    let mut group = c.benchmark_group("mesh/replay");
    group.throughput(Throughput::Elements(replay.data.bar_count as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    for (name, parent, _, seconds) in &variants {
        group.measurement_time(Duration::from_secs(*seconds));
        // Full mesh, one replay of all steps, with the data directory on `parent`.
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let outcome = replay_once(replay, parent);
                    total += outcome.elapsed;
                    remove(outcome.dir);
                }
                total
            })
        });
    }
    group.finish();
}

/// Trivial actors shaped like the mesh: the same awaited sends per step, the same handler
/// reply kinds, no work and no payload.
mod bare {
    use actix::prelude::*;

    #[derive(Message)]
    #[rtype(result = "()")]
    pub struct Tick;
    #[derive(Message, Clone)]
    #[rtype(result = "()")]
    pub struct Quotes;
    #[derive(Message)]
    #[rtype(result = "()")]
    pub struct Close;
    #[derive(Message)]
    #[rtype(result = "()")]
    pub struct Completed;
    #[derive(Message)]
    #[rtype(result = "()")]
    pub struct Portfolio;
    #[derive(Message)]
    #[rtype(result = "()")]
    pub struct Brain;

    pub struct Quote {
        pub router: Addr<Router>,
        pub trader: Addr<Trader>,
    }
    pub struct Router {
        pub persistence: Addr<Persistence>,
    }
    pub struct Trader;
    pub struct Persistence {
        pub orchestrator: Addr<Orchestrator>,
    }
    pub struct Orchestrator {
        pub trader: Addr<Trader>,
        pub router: Addr<Router>,
        pub persistence: Addr<Persistence>,
    }

    impl Actor for Quote {
        type Context = Context<Self>;
    }
    impl Actor for Router {
        type Context = Context<Self>;
    }
    impl Actor for Trader {
        type Context = Context<Self>;
    }
    impl Actor for Persistence {
        type Context = Context<Self>;
    }
    impl Actor for Orchestrator {
        type Context = Context<Self>;
    }

    /// Like quote_service: awaits router quotes, trader quotes, router close.
    impl Handler<Tick> for Quote {
        type Result = ResponseFuture<()>;
        fn handle(&mut self, _: Tick, _: &mut Self::Context) -> Self::Result {
            let (router, trader) = (self.router.clone(), self.trader.clone());
            Box::pin(async move {
                router.send(Quotes).await.expect("router");
                trader.send(Quotes).await.expect("trader");
                router.send(Close).await.expect("router");
            })
        }
    }

    impl Handler<Quotes> for Router {
        type Result = ResponseActFuture<Self, ()>;
        fn handle(&mut self, _: Quotes, _: &mut Self::Context) -> Self::Result {
            Box::pin(fut::ready(()))
        }
    }

    /// Like execution_router's CloseStep: awaits persistence.
    impl Handler<Close> for Router {
        type Result = ResponseActFuture<Self, ()>;
        fn handle(&mut self, _: Close, _: &mut Self::Context) -> Self::Result {
            Box::pin(self.persistence.send(Completed).into_actor(self).map(|r, _, _| r.expect("persistence")))
        }
    }

    impl Handler<Brain> for Router {
        type Result = ();
        fn handle(&mut self, _: Brain, _: &mut Self::Context) {}
    }

    impl Handler<Quotes> for Trader {
        type Result = ResponseActFuture<Self, ()>;
        fn handle(&mut self, _: Quotes, _: &mut Self::Context) -> Self::Result {
            Box::pin(fut::ready(()))
        }
    }

    impl Handler<Brain> for Trader {
        type Result = ();
        fn handle(&mut self, _: Brain, _: &mut Self::Context) {}
    }

    /// Like persistence's StepCompleted: awaits the orchestrator.
    impl Handler<Completed> for Persistence {
        type Result = ResponseActFuture<Self, ()>;
        fn handle(&mut self, _: Completed, _: &mut Self::Context) -> Self::Result {
            Box::pin(self.orchestrator.send(Portfolio).into_actor(self).map(|r, _, _| r.expect("orchestrator")))
        }
    }

    impl Handler<Brain> for Persistence {
        type Result = ();
        fn handle(&mut self, _: Brain, _: &mut Self::Context) {}
    }

    /// Like intelligence_orchestrator when the brain changed: three sends awaited together.
    impl Handler<Portfolio> for Orchestrator {
        type Result = ResponseActFuture<Self, ()>;
        fn handle(&mut self, _: Portfolio, _: &mut Self::Context) -> Self::Result {
            let (a, b, c) = (self.trader.send(Brain), self.router.send(Brain), self.persistence.send(Brain));
            let sends = async move { tokio::join!(a, b, c) };
            Box::pin(sends.into_actor(self).map(|(a, b, c), _, _| {
                a.expect("trader");
                b.expect("router");
                c.expect("persistence");
            }))
        }
    }

    /// Starts the five actors on the current arbiter and returns the one the clock sends to.
    pub fn start() -> Addr<Quote> {
        let persistence_ctx = Context::<Persistence>::new();
        let router_ctx = Context::<Router>::new();
        let orchestrator_ctx = Context::<Orchestrator>::new();
        let trader = Trader.start();
        let persistence = persistence_ctx.address();
        let router = router_ctx.address();
        persistence_ctx.run(Persistence { orchestrator: orchestrator_ctx.address() });
        router_ctx.run(Router { persistence: persistence.clone() });
        orchestrator_ctx.run(Orchestrator { trader: trader.clone(), router: router.clone(), persistence });
        Quote { router, trader }.start()
    }
}

fn bench_bare_chain(c: &mut Criterion, replay: &Replay) {
    let steps = replay.data.steps.len();
    let mut group = c.benchmark_group("mesh");
    group.throughput(Throughput::Elements(replay.data.bar_count as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    // Message-passing floor: the mesh's nine awaited sends per step through trivial actors,
    // for as many steps as the replay has.
    group.bench_function("bare_actor_chain", |b| {
        b.iter_custom(|iters| {
            let system = System::new();
            let total = system.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let quote = bare::start();
                    tokio::task::yield_now().await;
                    let start = Instant::now();
                    for _ in 0..steps {
                        quote.send(bare::Tick).await.expect("quote");
                    }
                    total += start.elapsed();
                }
                total
            });
            drop(system);
            total
        })
    });
    group.finish();
}

fn main() {
    let replay = match load() {
        Ok(replay) => replay,
        Err(why) => {
            println!("replay bench skipped: {why}");
            return;
        }
    };
    println!(
        "replay: {} files, {} steps, {} bars, {} .. {}",
        replay.data.files.len(),
        replay.data.steps.len(),
        replay.data.bar_count,
        replay.data.steps.first().map_or("-".into(), |(t, _)| t.format("%Y-%m-%d").to_string()),
        replay.data.steps.last().map_or("-".into(), |(t, _)| t.format("%Y-%m-%d").to_string()),
    );
    let mut c = Criterion::default().configure_from_args();
    bench_bare_chain(&mut c, &replay);
    bench_replay(&mut c, &replay);
    c.final_summary();
}
