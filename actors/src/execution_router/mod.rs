//! `execution_router`: the risk gate in front of the internal paper broker, and the owner of the
//! live portfolio.
//!
//! Per step it handles, in order: `QuotesUpdated` (the broker fills pending orders at the open,
//! then `OrdersFilled` goes to smart_trader), `SubmitOrders` (each order through the gate),
//! `CloseStep` (positions marked at the close, the daily loss checked, and everything the step
//! changed sent to persistence as one `StepCompleted`).

pub mod broker;
pub mod risk;

use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use neolight_messages::{
    BrainState, BrainUpdated, CancelOpenOrders, CancelledOrder, CloseStep, Fill, OrderDecision, OrderRequest,
    OrdersFilled, Quote, QuotesUpdated, SetTradingState, StepCompleted, StepError, StepReport, SubmitOrders,
    TradingState,
};
use rust_decimal::Decimal;
use tracing::{debug, error, info, warn};

use self::broker::PaperBroker;
use self::risk::{check_order, trading_day, DailyLoss};
use crate::persistence::Persistence;
use crate::portfolio::Portfolio;
use crate::settings::TradingSettings;
use crate::shared::{AgentState, HeartbeatThrottle, Shared};
use crate::smart_trader::SmartTrader;

pub const NAME: &str = "execution_router";

pub struct ExecutionRouter {
    settings: TradingSettings,
    portfolio: Portfolio,
    broker: PaperBroker,
    trading_state: TradingState,
    /// Whether `Reducing` was set by the daily loss limit, so a new day may lift it.
    reducing_for_daily_loss: bool,
    daily_loss: DailyLoss,
    brain: Option<BrainState>,
    last_quotes: Arc<Vec<Quote>>,
    step: StepBuffer,
    trader: Addr<SmartTrader>,
    persistence: Addr<Persistence>,
    shared: Arc<Shared>,
    heartbeat: HeartbeatThrottle,
}

/// Changes of the current step, sent to persistence at `CloseStep`.
#[derive(Default)]
struct StepBuffer {
    intents: Vec<OrderRequest>,
    rejections: Vec<(OrderRequest, String)>,
    fills: Vec<Fill>,
    cancels: Vec<CancelledOrder>,
    round_trip_pnl: Vec<Decimal>,
}

impl ExecutionRouter {
    pub fn new(
        settings: TradingSettings,
        portfolio: Portfolio,
        trading_state: TradingState,
        trader: Addr<SmartTrader>,
        persistence: Addr<Persistence>,
        shared: Arc<Shared>,
    ) -> Self {
        let broker = PaperBroker::new(settings.fee_bps, settings.slippage_bps);
        ExecutionRouter {
            settings,
            portfolio,
            broker,
            trading_state,
            reducing_for_daily_loss: false,
            daily_loss: DailyLoss::new(),
            brain: None,
            last_quotes: Arc::new(Vec::new()),
            step: StepBuffer::default(),
            trader,
            persistence,
            shared,
            heartbeat: HeartbeatThrottle::default(),
        }
    }

    /// Re-submits orders whose intents were durable before a restart, so they fill at the next quote.
    pub fn with_pending(mut self, orders: Vec<OrderRequest>) -> Self {
        for order in orders {
            self.broker.submit(order);
        }
        self
    }

    fn set_state(&mut self, state: TradingState, reason: &str) {
        if self.trading_state != state {
            warn!(agent = NAME, from = self.trading_state.as_str(), to = state.as_str(), reason, "trading state changed");
            self.trading_state = state;
        }
    }

    fn halt(&mut self, reason: String) {
        error!(agent = NAME, %reason, "trading halted");
        self.set_state(TradingState::Halted, &reason);
        self.shared.status.write().expect("status lock poisoned").halt_reason = Some(reason.clone());
        self.shared.set_agent_error(NAME, reason);
    }

    fn is_crypto_book(&self) -> bool {
        self.last_quotes.first().is_some_and(|q| q.symbol.is_crypto())
    }

    fn completed_step(&mut self, step: u64, time: DateTime<Utc>) -> StepCompleted {
        let buffer = std::mem::take(&mut self.step);
        let drawdown = self.portfolio.update_drawdown();
        let mut portfolio = self.portfolio.view(time, self.trading_state);
        portfolio.drawdown = drawdown;
        StepCompleted {
            step,
            time,
            intents: buffer.intents,
            rejections: buffer.rejections,
            fills: buffer.fills,
            cancels: buffer.cancels,
            round_trip_pnl: buffer.round_trip_pnl,
            portfolio,
        }
    }
}

impl Actor for ExecutionRouter {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        self.shared.set_agent_state(NAME, AgentState::Running);
        info!(agent = NAME, trading_state = self.trading_state.as_str(), cash = %self.portfolio.cash, "started");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.shared.set_agent_state(NAME, AgentState::Stopped);
        info!(agent = NAME, "stopped");
    }
}

impl Handler<QuotesUpdated> for ExecutionRouter {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: QuotesUpdated, _ctx: &mut Self::Context) -> Self::Result {
        self.last_quotes = msg.quotes.clone();
        let day = trading_day(self.is_crypto_book(), msg.time);
        self.daily_loss.roll(day, self.portfolio.equity());
        if self.reducing_for_daily_loss && !self.daily_loss.breached {
            self.reducing_for_daily_loss = false;
            self.set_state(TradingState::Active, "new trading day");
        }

        let execution = self.broker.execute(&msg.quotes, msg.time, &mut self.portfolio);
        for cancel in &execution.cancels {
            warn!(agent = NAME, order_id = %cancel.client_order_id, reason = %cancel.reason, "order cancelled");
        }
        self.step.cancels.extend(execution.cancels.iter().cloned());
        self.step.round_trip_pnl.extend(execution.round_trip_pnl);
        if execution.fills.is_empty() && execution.cancels.is_empty() {
            return Box::pin(fut::ready(()));
        }
        for fill in &execution.fills {
            debug!(agent = NAME, order_id = %fill.client_order_id, symbol = %fill.symbol, side = %fill.side, qty = %fill.qty, price = %fill.price, "order filled");
        }
        self.step.fills.extend(execution.fills.iter().cloned());
        let filled = OrdersFilled { time: msg.time, fills: execution.fills, cancelled: execution.cancels };
        Box::pin(self.trader.send(filled).into_actor(self).map(|result, _act, _ctx| {
            if let Err(err) = result {
                error!(agent = NAME, error = %err, "smart_trader did not take the fills");
            }
        }))
    }
}

impl Handler<SubmitOrders> for ExecutionRouter {
    type Result = MessageResult<SubmitOrders>;

    fn handle(&mut self, msg: SubmitOrders, _ctx: &mut Self::Context) -> Self::Result {
        let cost_bps = self.settings.fee_bps + self.settings.slippage_bps;
        let mut decisions = Vec::with_capacity(msg.orders.len());
        for order in msg.orders {
            let committed = self.broker.commitments();
            let verdict =
                check_order(&order, self.trading_state, &self.settings.limits, &self.portfolio, &committed, cost_bps);
            let client_order_id = order.client_order_id.clone();
            match verdict {
                Ok(()) => {
                    debug!(agent = NAME, order_id = %client_order_id, symbol = %order.symbol, side = %order.side, qty = %order.qty, "order accepted");
                    self.step.intents.push(order.clone());
                    self.broker.submit(order);
                    decisions.push(OrderDecision { client_order_id, rejected: None });
                }
                Err(reason) => {
                    debug!(agent = NAME, order_id = %client_order_id, symbol = %order.symbol, %reason, "order rejected");
                    self.step.rejections.push((order, reason.clone()));
                    decisions.push(OrderDecision { client_order_id, rejected: Some(reason) });
                }
            }
        }
        MessageResult(decisions)
    }
}

impl Handler<CloseStep> for ExecutionRouter {
    type Result = ResponseActFuture<Self, Result<StepReport, StepError>>;

    fn handle(&mut self, msg: CloseStep, _ctx: &mut Self::Context) -> Self::Result {
        for quote in self.last_quotes.iter() {
            self.portfolio.mark(&quote.symbol, quote.price, quote.exchange_time);
        }
        let equity = self.portfolio.equity();
        if self.daily_loss.observe(equity, self.settings.limits.max_daily_loss) && self.trading_state == TradingState::Active {
            let loss = self.daily_loss.loss(equity);
            warn!(agent = NAME, %loss, limit = %self.settings.limits.max_daily_loss, "daily loss limit reached; only reducing orders until the next trading day");
            self.reducing_for_daily_loss = true;
            self.set_state(TradingState::Reducing, "max_daily_loss");
        }
        if self.heartbeat.due() {
            self.shared.heartbeat(NAME);
        }

        let completed = self.completed_step(msg.step, msg.time);
        Box::pin(self.persistence.send(completed).into_actor(self).map(|result, act, _ctx| {
            let flattened = result.map_err(|err| StepError::new(format!("persistence did not take the step: {err}")));
            match flattened.and_then(|inner| inner) {
                Ok(report) => Ok(report),
                Err(err) => {
                    act.halt(err.message.clone());
                    Err(err)
                }
            }
        }))
    }
}

impl Handler<CancelOpenOrders> for ExecutionRouter {
    type Result = ResponseActFuture<Self, Result<usize, StepError>>;

    fn handle(&mut self, msg: CancelOpenOrders, _ctx: &mut Self::Context) -> Self::Result {
        let cancels = self.broker.cancel_all(&msg.reason);
        let count = cancels.len();
        if count == 0 {
            return Box::pin(fut::ready(Ok(0)));
        }
        info!(agent = NAME, count, reason = %msg.reason, "open orders cancelled");
        self.step.cancels.extend(cancels);
        let completed = self.completed_step(u64::MAX, msg.time);
        Box::pin(self.persistence.send(completed).into_actor(self).map(move |result, _act, _ctx| {
            result.map_err(|err| StepError::new(format!("persistence did not take the cancels: {err}")))??;
            Ok(count)
        }))
    }
}

impl Handler<BrainUpdated> for ExecutionRouter {
    type Result = ();

    fn handle(&mut self, msg: BrainUpdated, _ctx: &mut Self::Context) {
        self.brain = Some(msg.brain);
    }
}

impl Handler<SetTradingState> for ExecutionRouter {
    type Result = MessageResult<SetTradingState>;

    fn handle(&mut self, msg: SetTradingState, _ctx: &mut Self::Context) -> Self::Result {
        if msg.state == TradingState::Halted {
            self.halt(msg.reason);
        } else {
            self.set_state(msg.state, &msg.reason);
        }
        MessageResult(self.trading_state)
    }
}
