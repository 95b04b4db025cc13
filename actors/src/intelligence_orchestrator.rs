//! `intelligence_orchestrator`: the brain. It turns each durable step's portfolio into a new
//! `risk_scaler` and `confidence` (formula in [`crate::brain`]) and sends them to the actors
//! that size and gate orders, and to persistence for the `atlas_brain.json` mirror.

use std::sync::Arc;

use actix::prelude::*;
use neolight_messages::{BrainState, BrainUpdated, PortfolioUpdated};
use tracing::{info, warn};

use crate::brain::Brain;
use crate::execution_router::ExecutionRouter;
use crate::persistence::Persistence;
use crate::shared::{AgentState, HeartbeatThrottle, Shared};
use crate::smart_trader::SmartTrader;

pub const NAME: &str = "intelligence_orchestrator";

pub struct IntelligenceOrchestrator {
    brain: Brain,
    last: Option<BrainState>,
    trader: Addr<SmartTrader>,
    router: Addr<ExecutionRouter>,
    persistence: Addr<Persistence>,
    shared: Arc<Shared>,
    heartbeat: HeartbeatThrottle,
}

impl IntelligenceOrchestrator {
    pub fn new(
        trader: Addr<SmartTrader>,
        router: Addr<ExecutionRouter>,
        persistence: Addr<Persistence>,
        shared: Arc<Shared>,
    ) -> Self {
        IntelligenceOrchestrator {
            brain: Brain::new(),
            last: None,
            trader,
            router,
            persistence,
            shared,
            heartbeat: HeartbeatThrottle::default(),
        }
    }
}

impl Actor for IntelligenceOrchestrator {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        self.shared.set_agent_state(NAME, AgentState::Running);
        info!(agent = NAME, "started");
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.shared.set_agent_state(NAME, AgentState::Stopped);
        info!(agent = NAME, "stopped");
    }
}

impl Handler<PortfolioUpdated> for IntelligenceOrchestrator {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: PortfolioUpdated, _ctx: &mut Self::Context) -> Self::Result {
        if self.heartbeat.due() {
            self.shared.heartbeat(NAME);
        }
        let state = self.brain.observe(msg.time, msg.equity, msg.drawdown, &msg.round_trip_pnl);
        let changed = self.last.as_ref().is_none_or(|last| {
            last.risk_scaler != state.risk_scaler || last.confidence != state.confidence
        });
        *self.shared.brain.write().expect("brain lock poisoned") = Some(state.clone());
        self.last = Some(state.clone());
        if !changed {
            return Box::pin(fut::ready(()));
        }

        let update = BrainUpdated { brain: state };
        let sends = futures_join3(
            self.trader.send(update.clone()),
            self.router.send(update.clone()),
            self.persistence.send(update),
        );
        Box::pin(sends.into_actor(self).map(|(a, b, c), _act, _ctx| {
            for result in [a, b, c] {
                if let Err(err) = result {
                    warn!(agent = NAME, error = %err, "brain update not delivered");
                }
            }
        }))
    }
}

/// Awaits three futures concurrently on the current task.
async fn futures_join3<A, B, C>(a: A, b: B, c: C) -> (A::Output, B::Output, C::Output)
where
    A: std::future::Future,
    B: std::future::Future,
    C: std::future::Future,
{
    tokio::join!(a, b, c)
}
