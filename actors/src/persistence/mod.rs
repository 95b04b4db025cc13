//! `persistence`: the sled ledger, snapshots and the mirror files, written by this actor alone.
//!
//! Durability rules:
//! - A step's new intents, fills and cancels are flushed together when the step ends, before
//!   any of them is visible outside the mesh (HTTP, mirrors, the brain). New fills are appended
//!   to `state/fills.csv` and fsynced first, then the ledger, a snapshot naming the last sequence
//!   it covers and the step time are written and sled is flushed.
//! - In a replay only steps with new orders flush: a step whose only records are fills of
//!   durable intents, or cancels, follows deterministically from them, so its records wait for
//!   the next flush and a rerun re-derives them after a crash. That is one grouped flush per
//!   step that has orders, plus one at the end. In sim and live every step with records flushes.
//! - Every record is keyed by its client order id and every PnL row by its time, so a rerun that
//!   re-derives earlier steps writes nothing that is already there and checks each re-derived
//!   fill against the stored one. Any difference halts trading.
//! - At start, cash and positions are rebuilt from the ledger's fills and compared with the last
//!   snapshot. Journal fills the ledger lacks roll forward into it. When sled cannot be opened,
//!   its directory is moved aside and the ledger is rebuilt from the journal.

pub mod csv_files;
pub mod datadir;
pub mod ledger;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use neolight_messages::{
    BrainState, BrainUpdated, Fill, FinishRun, MarketSource, OrderRequest, PortfolioUpdated, PortfolioView, Quote,
    RunSummary, StepCompleted, StepError, StepReport, WriteFinalSnapshot,
};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use tracing::{debug, error, info, warn};

use self::csv_files::{fill_row, last_pnl_time, parse_fills, pnl_row, repair_torn_tail, AppendFile, FILLS_HEADER, PNL_HEADER};
use self::datadir::{write_atomically, DataDir};
use self::ledger::{Ledger, LedgerRecord, Snapshot};
use crate::intelligence_orchestrator::IntelligenceOrchestrator;
use crate::portfolio::Portfolio;
use crate::shared::{AgentState, OrderEvent, Shared};

pub const NAME: &str = "persistence";

/// How often the HTTP portfolio snapshot and the PnL mirror are refreshed between flushes.
const PUBLISH_EVERY: Duration = Duration::from_millis(100);
const PNL_FLUSH_EVERY: Duration = Duration::from_secs(1);
/// `atlas_brain.json` is replaced at most this often (an atomic replace costs about 0.5 ms).
const BRAIN_WRITE_EVERY: Duration = Duration::from_secs(1);

/// Failure to open the store. The binary exits 2 on these.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}; fix or move the file aside, or run with --reset-state")]
    BadMirror(String),
    #[error("cannot rebuild the ledger: {0}")]
    Ledger(String),
}

/// State read back at start.
#[derive(Debug)]
pub struct Recovered {
    /// Cash and positions rebuilt from every fill in the ledger.
    pub portfolio: Portfolio,
    /// Accepted orders without a fill or a cancel.
    pub open_intents: Vec<OrderRequest>,
    /// Time of the last step whose records are durable.
    pub last_step_time: Option<DateTime<Utc>>,
    /// Set when the ledger and its snapshot disagree; trading starts halted.
    pub disagreement: Option<String>,
    pub rebuilt_from_journal: bool,
    pub fills: usize,
    /// The persisted quote cache (live market only).
    pub quotes: Vec<Quote>,
}

/// Counters for the run summary and benchmarks.
#[derive(Debug, Default, Clone)]
pub struct StoreStats {
    pub steps: u64,
    pub flushes: u64,
    pub new_orders: u64,
    pub first_step: Option<DateTime<Utc>>,
    pub last_step: Option<DateTime<Utc>>,
    pub max_drawdown: f64,
}

/// The ledger and mirror files, with the logic of [`Persistence`] minus messaging.
pub struct Store {
    dir: DataDir,
    ledger: Ledger,
    fills_csv: AppendFile,
    pnl_csv: AppendFile,
    known_intents: HashSet<String>,
    known_cancels: HashSet<String>,
    known_fills: HashMap<String, Fill>,
    /// Ledger fills not yet met again by the re-derivation, and the time of the latest one.
    unmatched_fills: usize,
    rebuilt: Option<Portfolio>,
    durable_until: Option<DateTime<Utc>>,
    pnl_last_time: Option<DateTime<Utc>>,
    /// `None`: one PnL row per step; otherwise one per interval of mesh time.
    mark_interval: Option<chrono::Duration>,
    pnl_flushed_at: Instant,
    pub stats: StoreStats,
    last_view: Option<PortfolioView>,
    /// Records and journal fills recorded but not flushed yet.
    pending_records: Vec<LedgerRecord>,
    pending_fills: Vec<Fill>,
    /// Replay only: steps without new orders wait for the next flush.
    defer_order_free_steps: bool,
}

impl Store {
    /// Opens the ledger and mirrors under `dir` and recovers the state they hold.
    pub fn open(dir: DataDir, market: MarketSource, initial_cash: Decimal, mark_interval: Option<Duration>) -> Result<(Store, Recovered), OpenError> {
        let fills_path = dir.fills_path();
        let pnl_path = dir.pnl_path();
        let io = |path: &std::path::Path| {
            let path = path.display().to_string();
            move |source| OpenError::Io { path, source }
        };

        let fills_text = repair_torn_tail(&fills_path, FILLS_HEADER).map_err(io(&fills_path))?;
        check_header(&fills_path, &fills_text, FILLS_HEADER)?;
        let journal = parse_fills(&fills_path, &fills_text).map_err(|e| OpenError::BadMirror(e.to_string()))?;
        let pnl_text = repair_torn_tail(&pnl_path, PNL_HEADER).map_err(io(&pnl_path))?;
        check_header(&pnl_path, &pnl_text, PNL_HEADER)?;
        let pnl_last_time = last_pnl_time(&pnl_path, &pnl_text).map_err(|e| OpenError::BadMirror(e.to_string()))?;

        let (mut ledger, contents, rebuilt_from_journal) = open_or_rebuild_ledger(&dir)?;
        let mut fills_csv = AppendFile::open(&fills_path).map_err(io(&fills_path))?;
        let pnl_csv = AppendFile::open(&pnl_path).map_err(io(&pnl_path))?;

        let mut known_intents = HashSet::new();
        let mut known_cancels = HashSet::new();
        let mut known_fills = HashMap::new();
        let mut ledger_fills = Vec::new();
        let mut intents = Vec::new();
        for (_, record) in &contents.records {
            match record {
                LedgerRecord::Intent { order, .. } => {
                    known_intents.insert(order.client_order_id.clone());
                    intents.push(order.clone());
                }
                LedgerRecord::Fill { fill } => {
                    known_fills.insert(fill.client_order_id.clone(), fill.clone());
                    ledger_fills.push(fill.clone());
                }
                LedgerRecord::Cancel { client_order_id, .. } => {
                    known_cancels.insert(client_order_id.clone());
                }
            }
        }

        // The journal is fsynced before sled, so it may hold fills the ledger lost: roll them forward.
        let missing: Vec<LedgerRecord> = journal
            .iter()
            .filter(|f| !known_fills.contains_key(&f.client_order_id))
            .map(|f| LedgerRecord::Fill { fill: f.clone() })
            .collect();
        if !missing.is_empty() {
            warn!(agent = NAME, fills = missing.len(), "rolling journal fills forward into the ledger; sled had lost them");
            ledger.append(&missing).map_err(|e| OpenError::Ledger(e.to_string()))?;
            ledger.flush().map_err(|e| OpenError::Ledger(e.to_string()))?;
            for record in missing {
                if let LedgerRecord::Fill { fill } = record {
                    known_fills.insert(fill.client_order_id.clone(), fill.clone());
                    ledger_fills.push(fill);
                }
            }
        }
        // And the other way: a fill the ledger has but the journal lost goes back into the journal.
        let journal_ids: HashSet<&str> = journal.iter().map(|f| f.client_order_id.as_str()).collect();
        let lost: Vec<&Fill> = ledger_fills.iter().filter(|f| !journal_ids.contains(f.client_order_id.as_str())).collect();
        if !lost.is_empty() {
            warn!(agent = NAME, fills = lost.len(), "restoring ledger fills missing from the journal");
            for fill in lost {
                fills_csv.push(&fill_row(fill)).map_err(io(&fills_path))?;
            }
            fills_csv.sync().map_err(io(&fills_path))?;
        }

        let mut disagreement = None;
        let portfolio = match Portfolio::from_fills(initial_cash, &ledger_fills) {
            Ok(portfolio) => portfolio,
            Err(err) => {
                disagreement = Some(format!("the ledger's fills do not add up: {err}"));
                Portfolio::new(initial_cash)
            }
        };
        if let Some(snapshot) = &contents.last_snapshot {
            let covered: Vec<&Fill> = contents
                .records
                .iter()
                .filter(|(seq, _)| *seq <= snapshot.seq)
                .filter_map(|(_, r)| match r {
                    LedgerRecord::Fill { fill } => Some(fill),
                    _ => None,
                })
                .collect();
            if let Ok(at_snapshot) = Portfolio::from_fills(initial_cash, covered) {
                if let Some(diff) = snapshot.difference(&at_snapshot) {
                    disagreement = Some(format!(
                        "the snapshot at ledger sequence {} disagrees with the ledger's fills: {diff}; \
                         move the data directory aside with --reset-state, or restore it from a backup",
                        snapshot.seq
                    ));
                }
            }
        }

        let open_intents: Vec<OrderRequest> = intents
            .into_iter()
            .filter(|o| !known_fills.contains_key(&o.client_order_id) && !known_cancels.contains(&o.client_order_id))
            .collect();
        let last_fill_time = ledger_fills.iter().map(|f| f.timestamp).max();
        let durable_until = contents.last_step_time.max(last_fill_time);
        let quotes = if market == MarketSource::Live {
            ledger.read_quotes().unwrap_or_else(|err| {
                warn!(agent = NAME, error = %err, "cannot read the persisted quote cache; starting with an empty one");
                Vec::new()
            })
        } else {
            Vec::new()
        };
        let recovered = Recovered {
            quotes,
            portfolio: portfolio.clone(),
            open_intents,
            last_step_time: durable_until,
            disagreement,
            rebuilt_from_journal,
            fills: ledger_fills.len(),
        };
        let store = Store {
            dir,
            ledger,
            fills_csv,
            pnl_csv,
            known_intents,
            known_cancels,
            unmatched_fills: if market == MarketSource::Replay { known_fills.len() } else { 0 },
            known_fills,
            rebuilt: (market == MarketSource::Replay && durable_until.is_some()).then_some(portfolio),
            durable_until,
            pnl_last_time,
            mark_interval: mark_interval.map(|d| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)),
            pnl_flushed_at: Instant::now(),
            stats: StoreStats::default(),
            last_view: None,
            pending_records: Vec::new(),
            pending_fills: Vec::new(),
            defer_order_free_steps: market == MarketSource::Replay,
        };
        Ok((store, recovered))
    }

    pub fn dir(&self) -> &DataDir {
        &self.dir
    }

    fn pnl_due(&self, time: DateTime<Utc>) -> bool {
        match (self.pnl_last_time, self.mark_interval) {
            (None, _) => true,
            (Some(last), None) => time > last,
            (Some(last), Some(interval)) => time >= last + interval,
        }
    }

    /// Records one step: new records are flushed as one group; re-derived ones are checked.
    /// Returns the order events that are new, for the recent-orders feed.
    pub fn record_step(&mut self, step: &StepCompleted) -> Result<(StepReport, Vec<OrderEvent>), StepError> {
        let mut records = Vec::new();
        let mut events = Vec::new();
        let mut new_fills = Vec::new();
        for order in &step.intents {
            if self.known_intents.insert(order.client_order_id.clone()) {
                records.push(LedgerRecord::Intent { time: step.time, order: order.clone() });
                events.push(OrderEvent::Accepted { time: step.time, order: order.clone() });
            }
        }
        for fill in &step.fills {
            match self.known_fills.get(&fill.client_order_id) {
                Some(stored) if stored == fill => self.unmatched_fills = self.unmatched_fills.saturating_sub(1),
                Some(stored) => {
                    return Err(StepError::new(format!(
                        "re-derived fill {} differs from the ledger: {} {} {} at {} fee {} vs stored {} {} at {} fee {}; \
                         the inputs or settings changed, so use --reset-state or another --data-dir",
                        fill.client_order_id, fill.side, fill.qty, fill.symbol, fill.price, fill.fee,
                        stored.side, stored.qty, stored.price, stored.fee
                    )))
                }
                None => {
                    self.known_fills.insert(fill.client_order_id.clone(), fill.clone());
                    records.push(LedgerRecord::Fill { fill: fill.clone() });
                    events.push(OrderEvent::Filled { fill: fill.clone() });
                    new_fills.push(fill);
                }
            }
        }
        for cancel in &step.cancels {
            if self.known_cancels.insert(cancel.client_order_id.clone()) {
                records.push(LedgerRecord::Cancel {
                    time: step.time,
                    client_order_id: cancel.client_order_id.clone(),
                    reason: cancel.reason.clone(),
                });
                events.push(OrderEvent::Cancelled {
                    time: step.time,
                    client_order_id: cancel.client_order_id.clone(),
                    reason: cancel.reason.clone(),
                });
            }
        }
        let rederived = self.durable_until.is_some_and(|t| step.time <= t);
        if !rederived {
            for (order, reason) in &step.rejections {
                events.push(OrderEvent::Rejected { time: step.time, order: order.clone(), reason: reason.clone() });
            }
        }
        self.check_rederived_state(step)?;

        if self.pnl_due(step.time) {
            self.pnl_csv.push(&pnl_row(&step.portfolio)).map_err(io_step)?;
            self.pnl_last_time = Some(step.time);
        }
        let new_intents = records.iter().filter(|r| matches!(r, LedgerRecord::Intent { .. })).count();
        let has_records = !records.is_empty();
        self.pending_records.extend(records);
        self.pending_fills.extend(new_fills.into_iter().cloned());
        // A replay step without new orders needs no flush of its own: its fills follow from
        // durable intents, so a rerun re-derives them. They are flushed with the next step that
        // has orders, or at the end.
        let must_flush = !self.pending_records.is_empty() && (new_intents > 0 || !self.defer_order_free_steps);
        if must_flush {
            self.flush_pending(&step.portfolio)?;
            self.stats.new_orders += new_intents as u64;
            if self.durable_until.is_none_or(|t| step.time > t) {
                self.durable_until = Some(step.time);
            }
        } else if self.pnl_flushed_at.elapsed() >= PNL_FLUSH_EVERY {
            self.pnl_csv.flush().map_err(io_step)?;
            self.pnl_flushed_at = Instant::now();
        }

        if step.step != u64::MAX {
            self.stats.steps += 1;
            self.stats.first_step.get_or_insert(step.time);
            self.stats.last_step = Some(step.time);
            self.stats.max_drawdown = self.stats.max_drawdown.max(step.portfolio.drawdown);
        }
        self.last_view = Some(step.portfolio.clone());
        let report = StepReport {
            orders: step.intents.len(),
            rejections: step.rejections.len(),
            fills: step.fills.len(),
            rederived: rederived && !has_records,
        };
        Ok((report, events))
    }

    /// Once the re-derivation passes the last durable step, its portfolio must equal the one
    /// rebuilt from the ledger.
    fn check_rederived_state(&mut self, step: &StepCompleted) -> Result<(), StepError> {
        let Some(rebuilt) = &self.rebuilt else { return Ok(()) };
        if self.durable_until.is_some_and(|t| step.time < t) {
            return Ok(());
        }
        if self.unmatched_fills > 0 {
            return Err(StepError::new(format!(
                "{} fills in the ledger were not re-derived by this replay; the inputs or settings changed, so use --reset-state or another --data-dir",
                self.unmatched_fills
            )));
        }
        let mut derived = Portfolio::new(rebuilt.initial_cash);
        derived.cash = step.portfolio.cash;
        for p in &step.portfolio.positions {
            derived.positions.insert(
                p.symbol.clone(),
                crate::portfolio::Position { qty: p.qty, cost_basis: Decimal::ZERO, last_price: p.market_price, last_price_time: p.price_time },
            );
        }
        if let Some(diff) = rebuilt.difference(&derived) {
            return Err(StepError::new(format!(
                "the ledger rebuilt at start disagrees with the re-derived state at {}: {diff}",
                step.time
            )));
        }
        info!(agent = NAME, at = %step.time, "re-derived state matches the ledger; resuming");
        self.rebuilt = None;
        Ok(())
    }

    /// Writes every pending record as one group: fills to the journal with fsync, then the
    /// ledger, a snapshot of `view` and the step time, then one sled flush.
    fn flush_pending(&mut self, view: &PortfolioView) -> Result<(), StepError> {
        let records = std::mem::take(&mut self.pending_records);
        let fills = std::mem::take(&mut self.pending_fills);
        if !fills.is_empty() {
            for fill in &fills {
                self.fills_csv.push(&fill_row(fill)).map_err(io_step)?;
            }
            self.fills_csv.sync().map_err(io_step)?;
        }
        let ledger_err = |e: ledger::LedgerError| StepError::new(format!("ledger write failed: {e}"));
        let seq = self.ledger.append(&records).map_err(ledger_err)?;
        self.ledger.put_snapshot(&Snapshot::of(view, seq)).map_err(ledger_err)?;
        self.ledger.set_last_step_time(view.time).map_err(ledger_err)?;
        self.ledger.flush().map_err(ledger_err)?;
        self.pnl_csv.flush().map_err(io_step)?;
        self.pnl_flushed_at = Instant::now();
        self.stats.flushes += 1;
        Ok(())
    }

    /// Writes a snapshot of the last step and makes every file durable.
    pub fn final_flush(&mut self) -> Result<(), StepError> {
        if !self.pending_records.is_empty() {
            if let Some(view) = self.last_view.clone() {
                self.flush_pending(&view)?;
            }
        }
        if let Some(view) = &self.last_view {
            let ledger_err = |e: ledger::LedgerError| StepError::new(format!("ledger write failed: {e}"));
            self.ledger.put_snapshot(&Snapshot::of(view, self.ledger.last_seq())).map_err(ledger_err)?;
            self.ledger.flush().map_err(ledger_err)?;
        }
        self.pnl_csv.sync().map_err(io_step)?;
        self.fills_csv.sync().map_err(io_step)?;
        Ok(())
    }

    pub fn summary(&self, buy_and_hold_return: Option<f64>, initial_cash: Decimal) -> RunSummary {
        let view = self.last_view.as_ref();
        let final_equity = view.map_or(initial_cash, |v| v.equity);
        let total_return = if initial_cash.is_zero() {
            0.0
        } else {
            ((final_equity - initial_cash) / initial_cash).to_f64().unwrap_or(0.0)
        };
        RunSummary {
            final_equity,
            total_return,
            max_drawdown: self.stats.max_drawdown,
            trades: self.known_fills.len() as u64,
            fees: view.map_or(Decimal::ZERO, |v| v.fees),
            buy_and_hold_return,
            first_step: self.stats.first_step,
            last_step: self.stats.last_step,
            steps: self.stats.steps,
        }
    }

    pub fn last_view(&self) -> Option<&PortfolioView> {
        self.last_view.as_ref()
    }
}

fn io_step(err: std::io::Error) -> StepError {
    StepError::new(format!("mirror write failed: {err}"))
}

fn check_header(path: &std::path::Path, text: &str, header: &str) -> Result<(), OpenError> {
    let first = text.lines().next().unwrap_or_default();
    if first.trim_end_matches('\r') != header {
        return Err(OpenError::BadMirror(format!("{}:1: header {first:?} is not {header:?}", path.display())));
    }
    Ok(())
}

/// Opens sled; when it cannot be opened or read, moves it aside and starts an empty ledger that
/// the journal then fills.
fn open_or_rebuild_ledger(dir: &DataDir) -> Result<(Ledger, ledger::LedgerContents, bool), OpenError> {
    let path = dir.ledger_path();
    // sled reports most corruption as an error, but a panic while recovering its log must not
    // stop the mesh either: both lead to the journal rebuild.
    let attempt = std::panic::catch_unwind(|| {
        Ledger::open(&path).and_then(|ledger| ledger.read_all().map(|contents| (ledger, contents)))
    })
    .unwrap_or_else(|_| Err(ledger::LedgerError::Panicked));
    match attempt {
        Ok((ledger, contents)) => Ok((ledger, contents, false)),
        Err(err) => {
            error!(agent = NAME, path = %path.display(), error = %err, "sled store cannot be opened; moving it aside and rebuilding the ledger from state/fills.csv");
            dir.move_aside(&["ledger"], "sled-unreadable").map_err(|e| OpenError::Ledger(e.to_string()))?;
            let ledger = Ledger::open(&path).map_err(|e| OpenError::Ledger(e.to_string()))?;
            Ok((ledger, ledger::LedgerContents::default(), true))
        }
    }
}

/// The persistence actor around a [`Store`].
pub struct Persistence {
    store: Store,
    initial_cash: Decimal,
    orchestrator: Addr<IntelligenceOrchestrator>,
    shared: Arc<Shared>,
    brain: Option<BrainState>,
    brain_written_at: Option<Instant>,
    brain_dirty: bool,
    published_at: Option<Instant>,
}

impl Persistence {
    pub fn new(store: Store, initial_cash: Decimal, orchestrator: Addr<IntelligenceOrchestrator>, shared: Arc<Shared>) -> Self {
        Persistence {
            store,
            initial_cash,
            orchestrator,
            shared,
            brain: None,
            brain_written_at: None,
            brain_dirty: false,
            published_at: None,
        }
    }

    fn write_brain(&mut self) {
        let Some(brain) = &self.brain else { return };
        let path = self.store.dir().brain_path();
        let text = serde_json::to_vec_pretty(brain).expect("brain state serializes");
        match write_atomically(&path, &text) {
            Ok(()) => {
                self.brain_written_at = Some(Instant::now());
                self.brain_dirty = false;
            }
            Err(err) => warn!(agent = NAME, path = %path.display(), error = %err, "cannot write the brain mirror"),
        }
    }

    fn publish(&mut self, force: bool) {
        if !force && self.published_at.is_some_and(|at| at.elapsed() < PUBLISH_EVERY) {
            return;
        }
        if let Some(view) = self.store.last_view() {
            *self.shared.portfolio.write().expect("portfolio lock poisoned") = Some(view.clone());
            let mut status = self.shared.status.write().expect("status lock poisoned");
            status.mesh_time = Some(view.time);
            status.steps_done = self.store.stats.steps;
        }
        self.shared.heartbeat(NAME);
        self.published_at = Some(Instant::now());
    }

    pub fn stats(&self) -> &StoreStats {
        &self.store.stats
    }
}

impl Actor for Persistence {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        self.shared.set_agent_state(NAME, AgentState::Running);
        info!(agent = NAME, path = %self.store.dir().root.display(), "started");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if let Err(err) = self.store.final_flush() {
            error!(agent = NAME, error = %err, "final flush failed");
        }
        self.shared.set_agent_state(NAME, AgentState::Stopped);
        info!(agent = NAME, flushes = self.store.stats.flushes, "stopped");
    }
}

impl Handler<StepCompleted> for Persistence {
    type Result = ResponseActFuture<Self, Result<StepReport, StepError>>;

    fn handle(&mut self, msg: StepCompleted, _ctx: &mut Self::Context) -> Self::Result {
        let (report, events) = match self.store.record_step(&msg) {
            Ok(done) => done,
            Err(err) => {
                error!(agent = NAME, step_time = %msg.time, error = %err, "step not recorded");
                self.shared.set_agent_error(NAME, err.message.clone());
                return Box::pin(fut::ready(Err(err)));
            }
        };
        let flushed = !events.is_empty();
        if flushed {
            debug!(agent = NAME, step_time = %msg.time, events = events.len(), "step flushed");
            self.shared.push_order_events(events);
        }
        self.publish(flushed);
        if self.brain_dirty && self.brain_written_at.is_none_or(|at| at.elapsed() >= BRAIN_WRITE_EVERY) {
            self.write_brain();
        }

        let update = PortfolioUpdated {
            time: msg.time,
            equity: msg.portfolio.equity,
            drawdown: msg.portfolio.drawdown,
            round_trip_pnl: msg.round_trip_pnl,
        };
        Box::pin(self.orchestrator.send(update).into_actor(self).map(move |result, _act, _ctx| {
            if let Err(err) = result {
                warn!(agent = NAME, error = %err, "intelligence_orchestrator did not take the portfolio");
            }
            Ok(report)
        }))
    }
}

impl Handler<BrainUpdated> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: BrainUpdated, _ctx: &mut Self::Context) {
        self.brain = Some(msg.brain);
        self.brain_dirty = true;
    }
}

impl Handler<WriteFinalSnapshot> for Persistence {
    type Result = Result<(), StepError>;

    fn handle(&mut self, _msg: WriteFinalSnapshot, _ctx: &mut Self::Context) -> Self::Result {
        self.store.final_flush()?;
        self.write_brain();
        self.publish(true);
        info!(agent = NAME, steps = self.store.stats.steps, flushes = self.store.stats.flushes, "final snapshot written");
        Ok(())
    }
}

impl Handler<FinishRun> for Persistence {
    type Result = Result<RunSummary, StepError>;

    fn handle(&mut self, msg: FinishRun, _ctx: &mut Self::Context) -> Self::Result {
        // The replay is over: make everything durable now, not at shutdown, since the process
        // may keep serving HTTP for a long time.
        self.store.final_flush()?;
        self.publish(true);
        let summary = self.store.summary(msg.buy_and_hold_return, self.initial_cash);
        let path = self.store.dir().last_run_path();
        let text = serde_json::to_vec_pretty(&summary).expect("run summary serializes");
        write_atomically(&path, &text).map_err(|e| StepError::new(format!("cannot write {}: {e}", path.display())))?;
        Ok(summary)
    }
}

/// Query: the store's counters (steps, flushes, new orders).
#[derive(Debug, Clone, Message)]
#[rtype(result = "StoreStats")]
pub struct GetStoreStats;

impl Handler<GetStoreStats> for Persistence {
    type Result = MessageResult<GetStoreStats>;

    fn handle(&mut self, _msg: GetStoreStats, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.store.stats.clone())
    }
}

/// quote_service's refresher to persistence: quotes to keep across restarts.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct PersistQuotes {
    pub quotes: Vec<Quote>,
}

impl Handler<PersistQuotes> for Persistence {
    type Result = ();

    fn handle(&mut self, msg: PersistQuotes, _ctx: &mut Self::Context) {
        if let Err(err) = self.store.ledger.put_quotes(&msg.quotes) {
            warn!(agent = NAME, error = %err, "cannot persist quotes");
        }
    }
}
