//! sidebus: a per-pod pub/sub sidecar that speaks Dapr's pub/sub API.
//!
//! Where things live:
//! - `config/`    flags (`flags.rs`), resource YAML and validation, the typed model
//! - `broker/`    the component contract (`mod.rs`), registry, conformance suite,
//!   one folder per broker (`in_memory/`, …)
//! - `envelope/`  the CloudEvent daprd would build; decoding on delivery
//! - `delivery/`  per-subscription dispatcher, app channels, routing, dead letters
//! - `api/`       the HTTP (and gRPC) edges; daprd's error codes in one place
//! - `runtime/`   the running sidecar: components, subscriptions, readiness, shutdown
#![forbid(unsafe_code)]

pub mod broker;
pub mod config;
pub mod delivery;
pub mod envelope;
pub mod routing;
pub mod runtime;
