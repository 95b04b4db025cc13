//! Typed messages between the actors. Every field is named; the reply type is in `#[rtype]`.

use std::sync::Arc;

use actix::Message;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::domain::{Bar, BrainState, Fill, OrderRequest, PortfolioView, Quote, TradingState};

/// Failure that ends a step: the store could not be written or the state disagrees with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StepError {
    pub message: String,
}

impl StepError {
    pub fn new(message: impl Into<String>) -> Self {
        StepError { message: message.into() }
    }
}

/// Counts of what one step did, returned to the market clock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepReport {
    pub orders: usize,
    pub rejections: usize,
    pub fills: usize,
    /// Whether the step's records were already durable and only re-derived.
    pub rederived: bool,
}

/// Market clock to quote_service: one step of the market, all bars sharing `time`, in symbol order.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<StepReport, StepError>")]
pub struct Tick {
    pub step: u64,
    pub time: DateTime<Utc>,
    pub bars: Vec<Bar>,
}

/// quote_service to execution_router and smart_trader: the step's quotes, sorted by symbol.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct QuotesUpdated {
    pub step: u64,
    pub time: DateTime<Utc>,
    pub quotes: Arc<Vec<Quote>>,
}

/// execution_router to smart_trader: orders the paper broker executed or dropped this step.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct OrdersFilled {
    pub time: DateTime<Utc>,
    pub fills: Vec<Fill>,
    pub cancelled: Vec<CancelledOrder>,
}

/// smart_trader to execution_router: the step's orders, each checked by the risk gate.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Vec<OrderDecision>")]
pub struct SubmitOrders {
    pub time: DateTime<Utc>,
    pub orders: Vec<OrderRequest>,
}

/// The risk gate's decision for one order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderDecision {
    pub client_order_id: String,
    /// `None` when accepted; the rejection reason otherwise.
    pub rejected: Option<String>,
}

/// quote_service to execution_router: every quote of the step was handled; mark and record it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<StepReport, StepError>")]
pub struct CloseStep {
    pub step: u64,
    pub time: DateTime<Utc>,
}

/// An order the paper broker will not execute, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct CancelledOrder {
    pub client_order_id: String,
    pub reason: String,
}

/// execution_router to persistence: everything a step changed, flushed as one group.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<StepReport, StepError>")]
pub struct StepCompleted {
    pub step: u64,
    pub time: DateTime<Utc>,
    pub intents: Vec<OrderRequest>,
    pub rejections: Vec<(OrderRequest, String)>,
    pub fills: Vec<Fill>,
    pub cancels: Vec<CancelledOrder>,
    /// Realised PnL (net of fees) of each sell fill in `fills`, for the brain's hit rate.
    pub round_trip_pnl: Vec<Decimal>,
    pub portfolio: PortfolioView,
}

/// persistence to intelligence_orchestrator: the marked portfolio once a step is durable.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct PortfolioUpdated {
    pub time: DateTime<Utc>,
    pub equity: Decimal,
    pub drawdown: f64,
    pub round_trip_pnl: Vec<Decimal>,
}

/// intelligence_orchestrator to smart_trader and execution_router.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct BrainUpdated {
    pub brain: BrainState,
}

/// Market clock to execution_router after the last step of a replay: cancel what is still open.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<usize, StepError>")]
pub struct CancelOpenOrders {
    pub time: DateTime<Utc>,
    pub reason: String,
}

/// Composition root to persistence at shutdown: final snapshot, mirrors and flush.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), StepError>")]
pub struct WriteFinalSnapshot;

/// Composition root to execution_router: change the trading state by hand or after a failure.
#[derive(Debug, Clone, Message)]
#[rtype(result = "TradingState")]
pub struct SetTradingState {
    pub state: TradingState,
    pub reason: String,
}

/// Market clock to persistence after the last replay step: write the run summary.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<RunSummary, StepError>")]
pub struct FinishRun {
    /// Mean return of holding every replayed symbol from its first close to its last.
    pub buy_and_hold_return: Option<f64>,
}

/// The end-of-replay summary, also written to `runtime/last_run.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunSummary {
    #[serde(with = "rust_decimal::serde::float")]
    pub final_equity: Decimal,
    pub total_return: f64,
    pub max_drawdown: f64,
    pub trades: u64,
    #[serde(with = "rust_decimal::serde::float")]
    pub fees: Decimal,
    pub buy_and_hold_return: Option<f64>,
    pub first_step: Option<DateTime<Utc>>,
    pub last_step: Option<DateTime<Utc>>,
    pub steps: u64,
}

/// Market clock to quote_service in live mode: one step with the quotes fetched since the last.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<StepReport, StepError>")]
pub struct LiveTick {
    pub step: u64,
    pub time: DateTime<Utc>,
}

/// Query to quote_service: the cached quote of one symbol, whatever its freshness.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Option<crate::domain::Quote>")]
pub struct GetQuote {
    pub symbol: crate::domain::Symbol,
}
