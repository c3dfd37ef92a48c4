//! Tests against a real Kafka-protocol broker (`SIDEBUS_TEST_KAFKA_BROKERS`,
//! started by `scripts/brokers/tansu.sh`) and librdkafka's mock cluster.

mod config;
mod delivery;
mod members;
mod mock;
mod support;
mod wire;

crate::conformance_suite!(|| async { support::component(&[]) });
