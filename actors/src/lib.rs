//! The actors of the NeoLight mesh and the plain logic they wrap.
//!
//! | actor | module | owns |
//! |---|---|---|
//! | `persistence` | [`persistence`] | sled ledger, snapshots, `state/*.csv` and `runtime/*.json` mirrors |
//! | `execution_router` | [`execution_router`] | risk gate, paper broker, the portfolio |
//! | `intelligence_orchestrator` | [`intelligence_orchestrator`] | the brain ([`brain`]) |
//! | `smart_trader` | [`smart_trader`] | per-symbol strategies ([`strategies`]) |
//! | `quote_service` | [`quote_service`] | quote cache with freshness; starts each step; in the live market the cascade of [`providers`] fills the cache |
//!
//! They start in that order (priority 1 to 5) and stop in reverse. All of them run on the
//! arbiter of the thread that starts them, so a step's messages cost same-thread sends only.
//! Logic that needs no messaging lives in plain structs with their own unit tests:
//! [`portfolio::Portfolio`], [`execution_router::risk`], [`execution_router::broker::PaperBroker`],
//! [`brain::Brain`], [`strategies`], [`persistence::Store`], and the provider cascade in
//! [`providers`].
//! [`shared::Shared`] is what they publish for HTTP readers.

pub mod brain;
pub mod execution_router;
pub mod intelligence_orchestrator;
pub mod market;
pub mod persistence;
pub mod providers;
pub mod portfolio;
pub mod quote_service;
pub mod settings;
pub mod shared;
pub mod smart_trader;
pub mod strategies;
