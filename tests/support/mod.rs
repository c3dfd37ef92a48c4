//! Helpers of the integration tests: a real HTTP test app (`app`), the
//! sidecar fixture around the in-memory bus (`sidecar`), the real binary as
//! a child process (`process`), RabbitMQ access (`rabbitmq`), and the one
//! polling helper every test waits with (`eventually`).

// Each test crate uses a different subset of these helpers.
#![allow(dead_code, unused_imports, unused_macros)]

pub mod app;
pub mod eventually;
pub mod process;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;
pub mod sidecar;

pub use app::*;
pub(crate) use eventually::assert_eventually;
pub use sidecar::*;
