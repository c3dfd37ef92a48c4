//! Code generated from `proto/` by `build.rs` (prost messages, tonic
//! clients and servers for `dapr.proto.runtime.v1`).

#![allow(missing_docs, clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/dapr.proto.runtime.v1.rs"));
