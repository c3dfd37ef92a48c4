//! The API edges apps talk to. `http/` serves daprd's HTTP API (axum);
//! `grpc/` serves daprd's gRPC API (tonic) beside it. Both call the transport-neutral
//! publish path in `runtime::publish` and map failures through
//! [`error::ApiError`], the single place daprd's error codes live.

pub mod error;
pub mod grpc;
pub mod http;
pub mod metadata;

pub use error::ApiError;

/// Response header (HTTP) / metadata key (gRPC) telling the caller that a
/// publish was made durable in the component's local outbox rather than
/// confirmed by the broker; the forwarder delivers it later.
pub const OUTBOX_HEADER: &str = "sidebus-outbox";
/// The [`OUTBOX_HEADER`] value for a buffered publish.
pub const OUTBOX_BUFFERED: &str = "buffered";
