//! Quote read paths, measured in one run against their baselines:
//!
//! - `quote/actor_*`: a cache hit through the quote_service actor (`GetQuote`), sequential and
//!   pipelined (64 requests in flight), beside a bare echo actor on the same arbiter;
//! - `quote/direct_read`: the read-locked map lookup that HTTP handlers use;
//! - `providers/breaker_and_limiter_check`: the per-provider gate a fetch passes first.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use neolight::mesh::{run_identity, start_actors};
use neolight_actors::persistence::datadir::DataDir;
use neolight_actors::persistence::Store;
use neolight_actors::providers::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use neolight_actors::providers::limiter::{ProviderLimiter, Quota};
use neolight_actors::quote_service::QuoteService;
use neolight_actors::settings::TradingSettings;
use neolight_actors::shared::Shared;
use neolight_messages::{GetQuote, MarketSource, Quote, Symbol};
use rust_decimal_macros::dec;

const PIPELINE_DEPTH: usize = 64;

/// Replies with what it gets and does nothing else: the floor of an actix round trip.
struct Echo;

impl Actor for Echo {
    type Context = Context<Self>;
}

#[derive(Message, Clone)]
#[rtype(result = "Option<Quote>")]
struct EchoQuote {
    symbol: Symbol,
}

impl Handler<EchoQuote> for Echo {
    type Result = Option<Quote>;

    fn handle(&mut self, msg: EchoQuote, _ctx: &mut Self::Context) -> Self::Result {
        std::hint::black_box(&msg.symbol);
        None
    }
}

fn sample_quote(symbol: &Symbol) -> Quote {
    let now = Utc::now();
    Quote {
        symbol: symbol.clone(),
        price: dec!(187.435),
        bid: Some(dec!(187.41)),
        ask: Some(dec!(187.46)),
        open: dec!(187.435),
        source: "finnhub".to_string(),
        exchange_time: now,
        fetched_at: now,
    }
}

/// Starts the real mesh in sim mode on a scratch directory and caches one quote.
fn start_mesh(system: &SystemRunner, dir: &std::path::Path, symbol: &Symbol) -> (Addr<QuoteService>, Arc<Shared>) {
    let config = neolight::config::RunArgs { data_dir: Some(dir.to_path_buf()), ..Default::default() }
        .validate()
        .expect("default settings are valid");
    let identity = run_identity(&config, None);
    let data_dir = DataDir::open(dir, &identity, false).expect("scratch data directory opens");
    let (store, recovered) =
        Store::open(data_dir, MarketSource::Sim, config.trading.initial_cash, Some(Duration::from_secs(60))).expect("store opens");
    let trading = TradingSettings::default();
    let mesh = system.block_on(async { start_actors(MarketSource::Sim, &trading, std::slice::from_ref(symbol), store, &recovered) });
    mesh.shared.quotes.write().expect("quotes lock").insert(symbol.clone(), sample_quote(symbol));
    (mesh.quote_service, mesh.shared)
}

/// Sends `iters` messages to `addr` with up to [`PIPELINE_DEPTH`] in flight, awaiting them in
/// order, and returns the time taken.
async fn pipelined<A, M>(addr: &Addr<A>, iters: u64, message: impl Fn() -> M) -> Duration
where
    A: Actor<Context = Context<A>> + Handler<M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    let start = Instant::now();
    let mut left = iters as usize;
    while left > 0 {
        let batch = left.min(PIPELINE_DEPTH);
        let requests: Vec<_> = (0..batch).map(|_| addr.send(message())).collect();
        for request in requests {
            request.await.expect("actor responds");
        }
        left -= batch;
    }
    start.elapsed()
}

fn actor_round_trips(c: &mut Criterion) {
    let system = System::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let symbol = Symbol::new("AAPL");
    let (quote_service, _shared) = start_mesh(&system, dir.path(), &symbol);
    let echo = system.block_on(async { Echo.start() });

    let mut group = c.benchmark_group("quote");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3));

    group.bench_function("actor_echo_sequential", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    echo.send(EchoQuote { symbol: symbol.clone() }).await.expect("echo actor responds");
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("actor_quote_service_sequential", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let quote = quote_service.send(GetQuote { symbol: symbol.clone() }).await.expect("quote_service responds");
                    assert!(quote.is_some(), "the quote is cached");
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("actor_echo_pipelined", |b| {
        b.iter_custom(|iters| system.block_on(pipelined(&echo, iters, || EchoQuote { symbol: symbol.clone() })))
    });
    group.bench_function("actor_quote_service_pipelined", |b| {
        b.iter_custom(|iters| system.block_on(pipelined(&quote_service, iters, || GetQuote { symbol: symbol.clone() })))
    });
    group.finish();
}

fn direct_read(c: &mut Criterion) {
    let shared = Shared::new(MarketSource::Live);
    let symbols: Vec<Symbol> = (0..200).map(|i| Symbol::new(format!("SYM{i}"))).collect();
    {
        let mut cache = shared.quotes.write().expect("quotes lock");
        for symbol in &symbols {
            cache.insert(symbol.clone(), sample_quote(symbol));
        }
    }
    let wanted = symbols[123].clone();

    let mut group = c.benchmark_group("quote");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3));
    // The path of GET /quotes/{symbol}: a read lock on the shared cache and one lookup.
    group.bench_function("direct_read", |b| {
        b.iter(|| {
            let cache = shared.quotes.read().expect("quotes lock");
            std::hint::black_box(cache.get(std::hint::black_box(&wanted)).map(|q| (q.price, q.fetched_at)))
        })
    });
    group.finish();
}

fn gate_check(c: &mut Criterion) {
    let breaker = Mutex::new(CircuitBreaker::new(BreakerConfig::default(), true, 7));
    // A quota no benchmark run can use up, so every check takes the granting path.
    let limiter = ProviderLimiter::new(&[Quota::parse("1000000000/s").expect("quota parses")]);

    let mut group = c.benchmark_group("providers");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3));
    // The gate a fetch passes before calling a provider: the breaker's state, then a permit.
    group.bench_function("breaker_and_limiter_check", |b| {
        b.iter(|| {
            let state = breaker.lock().expect("breaker lock").state(Instant::now());
            let callable = matches!(state, BreakerState::Closed | BreakerState::HalfOpen);
            std::hint::black_box(callable && limiter.check())
        })
    });
    group.finish();
}

criterion_group!(benches, actor_round_trips, direct_read, gate_check);
criterion_main!(benches);
