//! The composition root of `neolight run`.
//!
//! Start-up, in order; any failure before step 5 exits 2 with nothing half-written:
//! 1. load and check every replay file;
//! 2. open and lock the data directory, check or store the run identity;
//! 3. open the ledger and mirrors and recover their state;
//! 4. start the actors in priority order on this thread's arbiter, then the HTTP server;
//! 5. run the market clock until the replay ends or a signal arrives.
//!
//! Shutdown: the clock stops after its current step, open replay orders are cancelled, the
//! summary is written, persistence writes a final snapshot and flushes, the HTTP server stops,
//! then the actor system stops (actors in reverse start order).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use neolight_actors::execution_router::{self, ExecutionRouter};
use neolight_actors::intelligence_orchestrator::{self, IntelligenceOrchestrator};
use neolight_actors::market::clock::{run_live, run_replay, run_sim, ClockEnd, Pace};
use neolight_actors::providers::cascade::Cascade;
use neolight_actors::providers::client::ProviderClient;
use neolight_actors::providers::refresher::Refresher;
use neolight_actors::market::price_file::{load_replay, ReplayData};
use neolight_actors::market::sim::SimMarket;
use neolight_actors::persistence::datadir::{DataDir, InputIdentity, RunIdentity, SCHEMA_VERSION};
use neolight_actors::persistence::{self, Persistence, Recovered, Store};
use neolight_actors::portfolio::Portfolio;
use neolight_actors::quote_service::{self, QuoteService};
use neolight_actors::settings::TradingSettings;
use neolight_actors::shared::{AgentKind, AgentState, Shared};
use neolight_actors::smart_trader::{self, SmartTrader};
use neolight_messages::{CancelOpenOrders, FinishRun, MarketSource, RunSummary, Symbol, TradingState, WriteFinalSnapshot};
use rust_decimal::prelude::ToPrimitive;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::{LogFormat, RunConfig};
use crate::http::{self, HttpState};

/// Exit codes: 0 done, 1 the run failed or trading halted, 2 bad input or configuration.
pub fn run(config: RunConfig) -> u8 {
    let replay = if config.market == MarketSource::Replay {
        match load_replay(&config.replay) {
            Ok(data) => Some(data),
            Err(err) => {
                error!("{err}");
                return 2;
            }
        }
    } else {
        None
    };
    if let Some(data) = &replay {
        for file in &data.files {
            let symbols: Vec<&str> = file.symbols.iter().map(|s| s.as_str()).collect();
            info!(path = %file.path.display(), rows = file.rows, skipped = file.skipped_rows, symbols = %symbols.join(","), "price file loaded");
        }
        info!(steps = data.steps.len(), bars = data.bar_count, "replay loaded");
    }

    // The port is taken before the data directory is touched, so a busy port writes nothing.
    let listener = match std::net::TcpListener::bind(SocketAddr::new(config.bind, config.port)) {
        Ok(listener) => listener,
        Err(err) => {
            error!(bind = %config.bind, port = config.port, error = %err, "cannot start the HTTP server; choose another --port or --bind");
            return 2;
        }
    };

    let identity = run_identity(&config, replay.as_ref());
    let dir = match DataDir::open(&config.data_dir, &identity, config.reset_state) {
        Ok(dir) => dir,
        Err(err) => {
            error!("{err}");
            return 2;
        }
    };
    let mark_interval = (config.market != MarketSource::Replay).then_some(config.mark_interval);
    let (store, recovered) = match Store::open(dir, config.market, config.trading.initial_cash, mark_interval) {
        Ok(opened) => opened,
        Err(err) => {
            error!("{err}");
            return 2;
        }
    };

    let system = actix::System::new();
    let code = system.block_on(run_mesh(config, replay, store, recovered, listener));
    code
}

/// Builds the run identity: a rerun with the same identity resumes, another one is rejected.
pub fn run_identity(config: &RunConfig, replay: Option<&ReplayData>) -> RunIdentity {
    let mut settings = BTreeMap::new();
    let mut inputs = Vec::new();
    // Sim and live rebuild the portfolio from the ledger's fills and the initial cash, so a
    // different initial cash would contradict the stored snapshots.
    settings.insert("initial-cash".to_string(), config.trading.initial_cash.to_string());
    if let Some(data) = replay {
        let trading = &config.trading;
        settings.insert("initial-cash".to_string(), trading.initial_cash.to_string());
        settings.insert("fee-bps".to_string(), trading.fee_bps.to_string());
        settings.insert("slippage-bps".to_string(), trading.slippage_bps.to_string());
        settings.insert("order-notional".to_string(), trading.order_notional.to_string());
        settings.insert("strategy".to_string(), format!("{:?}", trading.strategy));
        settings.insert("max-position-notional".to_string(), trading.limits.max_position_notional.to_string());
        settings.insert("max-gross-exposure".to_string(), trading.limits.max_gross_exposure.to_string());
        settings.insert("max-daily-loss".to_string(), trading.limits.max_daily_loss.to_string());
        settings.insert("max-age".to_string(), format!("{:?}", trading.max_age));
        for file in &data.files {
            let path = std::fs::canonicalize(&file.path).unwrap_or_else(|_| file.path.clone());
            inputs.push(InputIdentity {
                path: path.display().to_string(),
                sha256: file.sha256.clone(),
                symbols: file.symbols.iter().map(|s| s.to_string()).collect(),
            });
        }
        // The order of --replay flags does not change the run: steps are handled in symbol order.
        inputs.sort_by(|a, b| a.path.cmp(&b.path));
    }
    RunIdentity { schema_version: SCHEMA_VERSION, market: config.market.as_str().to_string(), inputs, settings }
}

/// Mean return of holding each symbol from its first close to its last.
pub fn buy_and_hold_return(data: &ReplayData) -> Option<f64> {
    let mut first = BTreeMap::new();
    let mut last = BTreeMap::new();
    for (_, bars) in &data.steps {
        for bar in bars {
            first.entry(bar.symbol.clone()).or_insert(bar.close);
            last.insert(bar.symbol.clone(), bar.close);
        }
    }
    let returns: Vec<f64> = first
        .iter()
        .filter_map(|(symbol, open)| ((last[symbol] - open) / open).to_f64())
        .collect();
    (!returns.is_empty()).then(|| returns.iter().sum::<f64>() / returns.len() as f64)
}

/// Writes the run summary to stderr: a table for people, or one JSON log line with JSON logs.
fn print_summary(summary: &RunSummary, format: LogFormat) {
    if format == LogFormat::Json {
        info!(
            final_equity = %summary.final_equity,
            total_return = summary.total_return,
            max_drawdown = summary.max_drawdown,
            trades = summary.trades,
            fees = %summary.fees,
            buy_and_hold_return = ?summary.buy_and_hold_return,
            steps = summary.steps,
            "run summary"
        );
        return;
    }
    let span = match (summary.first_step, summary.last_step) {
        (Some(a), Some(b)) => format!("{} .. {}", a.format("%Y-%m-%d"), b.format("%Y-%m-%d")),
        _ => "no steps".to_string(),
    };
    eprintln!("replay finished: {} steps, {span}", summary.steps);
    eprintln!("  final equity   {:.2}", summary.final_equity);
    eprintln!("  total return   {:.2}%", summary.total_return * 100.0);
    eprintln!("  max drawdown   {:.2}%", summary.max_drawdown * 100.0);
    eprintln!("  trades         {}", summary.trades);
    eprintln!("  fees           {:.2}", summary.fees);
    match summary.buy_and_hold_return {
        Some(r) => eprintln!("  buy and hold   {:.2}%", r * 100.0),
        None => eprintln!("  buy and hold   n/a"),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the mesh");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received; stopping"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT received; stopping"),
    }
}

/// Addresses of the running actors.
pub struct Mesh {
    pub shared: Arc<Shared>,
    pub persistence: Addr<Persistence>,
    pub router: Addr<ExecutionRouter>,
    pub quote_service: Addr<QuoteService>,
}

/// Starts the five required actors in priority order on the current arbiter, with the state
/// recovered from the data directory. Must run inside an actix system.
pub fn start_actors(
    market: MarketSource,
    trading: &TradingSettings,
    universe: &[Symbol],
    store: Store,
    recovered: &Recovered,
) -> Mesh {
    let shared = Arc::new(Shared::new(market));
    if !recovered.quotes.is_empty() {
        info!(quotes = recovered.quotes.len(), "quote cache restored from disk");
        let mut cache = shared.quotes.write().expect("quotes lock poisoned");
        for quote in &recovered.quotes {
            cache.insert(quote.symbol.clone(), quote.clone());
        }
    }
    shared.register(persistence::NAME, AgentKind::Service, true, 1);
    shared.register(execution_router::NAME, AgentKind::Service, true, 2);
    shared.register(intelligence_orchestrator::NAME, AgentKind::Agent, true, 3);
    shared.register(smart_trader::NAME, AgentKind::Agent, true, 4);
    shared.register(quote_service::NAME, AgentKind::Service, true, 5);

    if recovered.rebuilt_from_journal {
        warn!(fills = recovered.fills, "the ledger was rebuilt from state/fills.csv; orders are re-derived from the start");
    }
    let mut trading_state = TradingState::Active;
    if let Some(reason) = &recovered.disagreement {
        error!(%reason, "state on disk disagrees with itself; trading starts halted");
        shared.status.write().expect("status lock poisoned").halt_reason = Some(reason.clone());
        trading_state = TradingState::Halted;
    }
    // A replay re-derives its state from the first bar; sim and live continue from the ledger.
    let (portfolio, pending) = match market {
        MarketSource::Replay => (Portfolio::new(trading.initial_cash), Vec::new()),
        _ => (recovered.portfolio.clone(), recovered.open_intents.clone()),
    };
    if market != MarketSource::Replay && recovered.fills > 0 {
        info!(fills = recovered.fills, cash = %portfolio.cash, positions = portfolio.positions.len(), open_orders = pending.len(), "state restored from the ledger");
    }
    let positions = portfolio.positions.iter().map(|(s, p)| (s.clone(), p.qty)).collect();

    let persistence_ctx = Context::<Persistence>::new();
    let router_ctx = Context::<ExecutionRouter>::new();
    let orchestrator_ctx = Context::<IntelligenceOrchestrator>::new();
    let trader_ctx = Context::<SmartTrader>::new();
    let quote_ctx = Context::<QuoteService>::new();
    let persistence_addr = persistence_ctx.address();
    let router_addr = router_ctx.address();
    let orchestrator_addr = orchestrator_ctx.address();
    let trader_addr = trader_ctx.address();

    let persistence = persistence_ctx.run(Persistence::new(store, trading.initial_cash, orchestrator_addr, shared.clone()));
    let router = router_ctx.run(
        ExecutionRouter::new(trading.clone(), portfolio, trading_state, trader_addr.clone(), persistence_addr.clone(), shared.clone())
            .with_pending(pending.clone()),
    );
    orchestrator_ctx.run(IntelligenceOrchestrator::new(trader_addr, router_addr.clone(), persistence_addr, shared.clone()));
    let trader = trader_ctx.run(SmartTrader::new(trading.clone(), positions, router_addr, shared.clone()).with_pending(&pending));
    let quote_service =
        quote_ctx.run(QuoteService::new(market.as_str(), router.clone(), trader, shared.clone()).with_universe(universe.to_vec()));
    Mesh { shared, persistence, router, quote_service }
}

async fn run_mesh(
    config: RunConfig,
    replay: Option<ReplayData>,
    store: Store,
    recovered: Recovered,
    listener: std::net::TcpListener,
) -> u8 {
    let market = config.market;
    let Mesh { shared, persistence, router, quote_service } =
        start_actors(market, &config.trading, &config.universe, store, &recovered);

    let cascade = if market == MarketSource::Live {
        let client = match ProviderClient::new(config.providers.credentials.clone(), &config.providers.base_urls, config.providers.timeout) {
            Ok(client) => client,
            Err(err) => {
                error!(error = %err, "cannot start the live market");
                System::current().stop();
                return 2;
            }
        };
        let cascade = Arc::new(Cascade::new(client, &config.providers.cascade));
        let names: Vec<&str> = cascade.configured().iter().map(|p| p.as_str()).collect();
        info!(providers = %names.join(","), "live market: provider cascade configured");
        Some(cascade)
    } else {
        None
    };

    let http_state = HttpState {
        shared: shared.clone(),
        cascade: cascade.clone(),
        max_age: config.trading.max_age,
        stale_cap: config.trading.stale_cap,
        api_key: std::env::var("NEOLIGHT_API_KEY").ok().filter(|k| !k.is_empty()),
        require_auth: config.require_auth,
    };
    let (server, addr) = match http::start(http_state, listener) {
        Ok(started) => started,
        Err(err) => {
            error!(bind = %config.bind, port = config.port, error = %err, "cannot start the HTTP server; choose another --port or --bind");
            System::current().stop();
            return 2;
        }
    };
    let server_handle = server.handle();
    actix_rt::spawn(server);
    info!("listening on http://{addr}");

    let (stop_tx, stop_rx) = watch::channel(false);
    actix_rt::spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(true);
    });

    let mut code = 0;
    let outcome = match (&replay, &cascade) {
        (Some(data), _) => {
            if let Some(step) = shared.status.write().ok().as_mut() {
                step.steps_total = Some(data.steps.len() as u64);
            }
            let pace = Pace { steps_per_second: config.speed };
            run_replay(quote_service.clone(), &data.steps, pace, recovered.last_step_time, stop_rx.clone()).await
        }
        (None, Some(cascade)) => {
            let refresher = Refresher {
                failed_at: Default::default(),
                cascade: cascade.clone(),
                shared: shared.clone(),
                persistence: Some(persistence.clone()),
                universe: config.universe.clone(),
                refresh_after: config.trading.max_age / 2,
            };
            actix_rt::spawn(refresher.run(stop_rx.clone()));
            info!(symbols = config.universe.len(), tick = ?config.tick, "live market started");
            run_live(quote_service.clone(), config.tick, stop_rx.clone()).await
        }
        (None, None) => {
            let sim = SimMarket::new(config.seed, &config.universe);
            info!(seed = config.seed, symbols = config.universe.len(), tick = ?config.tick, "sim market started");
            run_sim(quote_service.clone(), sim, config.tick, stop_rx.clone()).await
        }
    };

    let mut wait_for_stop = false;
    match outcome {
        Ok(ClockEnd::Finished { steps }) => {
            let data = replay.as_ref().expect("only a replay finishes");
            let last_time: Option<DateTime<Utc>> = data.steps.last().map(|(t, _)| *t);
            if let Some(time) = last_time {
                let cancel = CancelOpenOrders { time, reason: "replay ended before the order could fill".to_string() };
                if let Err(err) = router.send(cancel).await.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.message)) {
                    error!(error = %err, "cannot record the cancelled orders");
                    code = 1;
                }
            }
            match persistence.send(FinishRun { buy_and_hold_return: buy_and_hold_return(data) }).await {
                Ok(Ok(summary)) => print_summary(&summary, config.log_format),
                Ok(Err(err)) => {
                    error!(error = %err, "cannot write the run summary");
                    code = 1;
                }
                Err(err) => {
                    error!(error = %err, "persistence did not respond");
                    code = 1;
                }
            }
            info!(steps, "replay finished");
            wait_for_stop = !config.until_end;
        }
        Ok(ClockEnd::Stopped { steps }) => info!(steps, "market clock stopped"),
        Err(err) => {
            error!(error = %err, "trading step failed; trading is halted");
            shared.status.write().expect("status lock poisoned").halt_reason.get_or_insert(err.message.clone());
            code = 1;
            wait_for_stop = !config.until_end;
        }
    }
    if shared.status.read().expect("status lock poisoned").halt_reason.is_some() {
        code = 1;
    }
    shared.status.write().expect("status lock poisoned").finished = true;

    if wait_for_stop {
        info!("serving HTTP until SIGTERM or Ctrl-C");
        let mut stop = stop_rx;
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    }

    match persistence.send(WriteFinalSnapshot).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            error!(error = %err, "final snapshot failed");
            code = code.max(1);
        }
        Err(err) => {
            error!(error = %err, "persistence did not respond to the final snapshot");
            code = code.max(1);
        }
    }
    server_handle.stop(true).await;
    // NOTE: the actors stop together when the system stops below. No supervisor yet stops them
    // one by one in reverse priority, restarts a failed one or detects a stall.
    for name in [quote_service::NAME, smart_trader::NAME, intelligence_orchestrator::NAME, execution_router::NAME, persistence::NAME] {
        shared.set_agent_state(name, AgentState::Stopped);
    }
    System::current().stop();
    info!(code, "mesh stopped");
    code
}
