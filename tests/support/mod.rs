//! Helpers of the delivery tests: a real HTTP test app (`app`) and the
//! sidecar fixture around the in-memory bus (`sidecar`).

#![allow(dead_code)]

pub mod app;
pub mod sidecar;

#[allow(unused_imports)] // not every test crate uses both
pub use app::*;
#[allow(unused_imports)]
pub use sidecar::*;
pub mod process;
