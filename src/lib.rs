//! The `neolight` binary's parts: configuration, the composition root and the HTTP server.
//! The actors live in `neolight-actors`, the message types in `neolight-messages`.

pub mod config;
pub mod http;
pub mod mesh;
pub mod quote;
