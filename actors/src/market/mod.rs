//! Market sources: the replay price-file reader, the seeded sim market, and the clock that
//! turns either into steps.

pub mod clock;
pub mod price_file;
pub mod sim;
