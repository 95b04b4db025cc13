//! State the actors publish for readers outside the mesh (HTTP handlers, the composition root).
//!
//! Actors write here a few times per step at most. Readers take a read lock and send no message,
//! so a request never waits in an actor's mailbox.

use std::collections::{BTreeMap, VecDeque};
use std::sync::RwLock;
use std::time::Instant;

use chrono::{DateTime, Utc};
use neolight_messages::{BrainState, Fill, MarketSource, OrderRequest, PortfolioView, Quote, Symbol};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    Service,
    Agent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Starting,
    Running,
    Restarting,
    Stalled,
    Failed,
    Stopped,
}

/// One row of `/agents`.
#[derive(Debug, Clone, Serialize)]
pub struct AgentInfo {
    pub name: &'static str,
    pub kind: AgentKind,
    pub required: bool,
    /// Start order: 1 starts first, shutdown runs in reverse.
    pub priority: u32,
    pub state: AgentState,
    pub restarts: u32,
    pub last_heartbeat: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// One entry of the recent-orders feed behind `/orders`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum OrderEvent {
    Accepted { time: DateTime<Utc>, order: OrderRequest },
    Rejected { time: DateTime<Utc>, order: OrderRequest, reason: String },
    Filled { fill: Fill },
    Cancelled { time: DateTime<Utc>, client_order_id: String, reason: String },
}

const RECENT_ORDER_EVENTS: usize = 200;

/// Run-wide facts for `/health` and the logs.
#[derive(Debug, Clone, Serialize)]
pub struct MeshStatus {
    pub market: MarketSource,
    /// Mesh-clock time of the last finished step.
    pub mesh_time: Option<DateTime<Utc>>,
    pub steps_done: u64,
    pub steps_total: Option<u64>,
    /// Set when trading was halted by a failure; `/health` reports it.
    pub halt_reason: Option<String>,
    pub finished: bool,
}

pub struct Shared {
    pub started: Instant,
    pub agents: RwLock<BTreeMap<&'static str, AgentInfo>>,
    pub portfolio: RwLock<Option<PortfolioView>>,
    pub brain: RwLock<Option<BrainState>>,
    pub quotes: RwLock<BTreeMap<Symbol, Quote>>,
    pub orders: RwLock<VecDeque<OrderEvent>>,
    pub status: RwLock<MeshStatus>,
}

impl Shared {
    pub fn new(market: MarketSource) -> Self {
        Shared {
            started: Instant::now(),
            agents: RwLock::new(BTreeMap::new()),
            portfolio: RwLock::new(None),
            brain: RwLock::new(None),
            quotes: RwLock::new(BTreeMap::new()),
            orders: RwLock::new(VecDeque::new()),
            status: RwLock::new(MeshStatus {
                market,
                mesh_time: None,
                steps_done: 0,
                steps_total: None,
                halt_reason: None,
                finished: false,
            }),
        }
    }

    pub fn register(&self, name: &'static str, kind: AgentKind, required: bool, priority: u32) {
        let info = AgentInfo {
            name,
            kind,
            required,
            priority,
            state: AgentState::Starting,
            restarts: 0,
            last_heartbeat: None,
            last_error: None,
        };
        self.agents.write().expect("agents lock poisoned").insert(name, info);
    }

    pub fn set_agent_state(&self, name: &str, state: AgentState) {
        if let Some(info) = self.agents.write().expect("agents lock poisoned").get_mut(name) {
            info.state = state;
            info.last_heartbeat = Some(Utc::now());
        }
    }

    pub fn set_agent_error(&self, name: &str, error: String) {
        if let Some(info) = self.agents.write().expect("agents lock poisoned").get_mut(name) {
            info.last_error = Some(error);
        }
    }

    pub fn heartbeat(&self, name: &str) {
        if let Some(info) = self.agents.write().expect("agents lock poisoned").get_mut(name) {
            info.last_heartbeat = Some(Utc::now());
        }
    }

    pub fn push_order_events(&self, events: impl IntoIterator<Item = OrderEvent>) {
        let mut orders = self.orders.write().expect("orders lock poisoned");
        for event in events {
            if orders.len() == RECENT_ORDER_EVENTS {
                orders.pop_front();
            }
            orders.push_back(event);
        }
    }
}

/// Throttles heartbeats to one shared-state write per wall second per actor.
#[derive(Debug, Default)]
pub struct HeartbeatThrottle {
    last: Option<Instant>,
}

impl HeartbeatThrottle {
    pub fn due(&mut self) -> bool {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last).as_secs() < 1 => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}
