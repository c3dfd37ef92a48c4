//! sidebus: a per-pod pub/sub sidecar that speaks Dapr's pub/sub API.
//!
//! Where things live:
//! - `config/`    flags (`flags.rs`), resource YAML (`resources/`), validation,
//!   secrets and templates, the typed model (`model.rs`)
//! - `broker/`    the component contract (`mod.rs`), registry, conformance
//!   suite, one folder per broker (`in_memory/`, `embedded/`, `kafka/`,
//!   `rabbitmq/`)
//! - `envelope/`  the CloudEvent daprd would build; decoding on delivery
//! - `routing/`   CEL routing rules of subscriptions
//! - `delivery/`  per-subscription dispatcher, HTTP and gRPC app channels,
//!   dead letters
//! - `api/`       the HTTP and gRPC edges; daprd's error codes in one place
//! - `proto.rs`   the gRPC messages and services generated from `proto/`
//! - `runtime/`   the running sidecar: components, scopes, the publish path,
//!   start-up and shutdown order
//! - `admin.rs`   liveness and readiness on the admin port
//! - `sidecar.rs` the whole sidecar: the runtime with the API servers and the
//!   admin port around it, in start-up and shutdown order (what `main` runs)
//! - `backoff.rs` the one retry schedule (constant or exponential, jittered)
//!   every retry loop uses; a leaf that imports nothing of this crate
//! - `telemetry/` logging
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod backoff;
pub mod broker;
pub mod config;
pub mod delivery;
pub mod envelope;
#[cfg(feature = "embedded")]
pub mod policy;
pub mod proto;
pub mod routing;
pub mod runtime;
pub mod sidecar;
pub mod telemetry;
