//! Helpers of the delivery tests: a real HTTP test app (`app`) and the
//! sidecar fixture around the in-memory bus (`sidecar`).

#![allow(dead_code)]

pub mod app;
pub mod sidecar;

pub use app::*;
pub use sidecar::*;
