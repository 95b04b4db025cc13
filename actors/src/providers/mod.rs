//! The live quote providers: response classification ([`classify`]), HTTP requests
//! ([`client`]), per-provider circuit breakers ([`breaker`]) and rate limits ([`limiter`]),
//! secret scrubbing ([`scrub`]), and the cascade that ties them together ([`cascade`]).

pub mod breaker;
pub mod cascade;
pub mod classify;
pub mod client;
pub mod limiter;
pub mod refresher;
pub mod scrub;

pub use classify::ProviderId;
