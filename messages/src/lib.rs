//! Domain types and typed messages of the NeoLight mesh.
//!
//! - [`domain`]: values that cross actor boundaries (symbols, bars, quotes, orders, fills,
//!   positions, the brain state). Money and quantities are `rust_decimal::Decimal`, never `f64`.
//! - [`msg`]: every message, with its reply type in `#[rtype]`. Commands are imperative
//!   (`SubmitOrders`), events past tense (`QuotesUpdated`, `StepCompleted`), queries `Get*`.
//!
//! One trading step, in message order:
//!
//! ```text
//! market clock --Tick--> quote_service
//! quote_service --QuotesUpdated--> execution_router   (paper broker fills pending orders)
//! execution_router --OrdersFilled--> smart_trader
//! quote_service --QuotesUpdated--> smart_trader --SubmitOrders--> execution_router (risk gate)
//! quote_service --CloseStep--> execution_router --StepCompleted--> persistence (one flush)
//! persistence --PortfolioUpdated--> intelligence_orchestrator
//! intelligence_orchestrator --BrainUpdated--> smart_trader, execution_router
//! ```
//!
//! Every send in that chain is awaited, so a step is finished when `Tick` returns.

pub mod domain;
pub mod msg;

pub use domain::*;
pub use msg::*;
