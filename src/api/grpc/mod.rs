//! daprd's gRPC API.

pub mod proto;
