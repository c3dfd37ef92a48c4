//! Code generated from `proto/` by `build.rs` (prost messages, tonic
//! clients and servers for `dapr.proto.runtime.v1`). A leaf: the gRPC API
//! (`api/grpc/`) serves it and the gRPC app channel (`delivery/app_grpc/`)
//! calls the app with it.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/dapr.proto.runtime.v1.rs"));
