//! The transport-neutral part of daprd's metadata API: what the sidecar
//! reports about itself. The HTTP edge renders it as daprd's JSON, the gRPC
//! edge as `GetMetadataResponse`; both set attributes through
//! [`set_attribute`].

use std::collections::BTreeMap;

use crate::config::model::SubscriptionSpec;
use crate::runtime::Runtime;

/// The daprd release whose API sidebus mirrors, reported as the extended
/// attribute `daprRuntimeVersion` (tools compare it to pick API versions).
pub const DAPR_COMPATIBLE_VERSION: &str = "1.18.3";

/// One loaded component as the metadata API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentInfo {
    /// Component name.
    pub name: String,
    /// `spec.type`, e.g. `pubsub.kafka`.
    pub type_name: String,
    /// `spec.version`.
    pub version: String,
    /// daprd capability strings of the component's features.
    pub capabilities: Vec<&'static str>,
}

/// How the sidecar reaches the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConnection {
    /// `--app-port` (0 when unset).
    pub port: u16,
    /// `http` or `grpc`.
    pub protocol: &'static str,
    /// `--app-channel-address`.
    pub channel_address: String,
    /// `--app-max-concurrency` (0 = unlimited).
    pub max_concurrency: i64,
}

/// Everything the metadata API reports, taken at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataSnapshot {
    /// App id.
    pub id: String,
    /// `sidebus <version>`.
    pub runtime_version: String,
    /// Loaded components, by name.
    pub components: Vec<ComponentInfo>,
    /// Extended attributes, including `daprRuntimeVersion`.
    pub extended: BTreeMap<String, String>,
    /// Active subscriptions of every kind.
    pub subscriptions: Vec<SubscriptionSpec>,
    /// The app connection.
    pub app: AppConnection,
}

/// Takes the metadata snapshot of `rt`.
pub fn snapshot(rt: &Runtime) -> MetadataSnapshot {
    let components = rt
        .components
        .values()
        .map(|c| ComponentInfo {
            name: c.spec.name.clone(),
            type_name: c.spec.type_name.clone(),
            version: c.spec.version.clone(),
            capabilities: c.pubsub.features().iter().map(|f| f.as_str()).collect(),
        })
        .collect();
    let mut extended = rt
        .extended_metadata
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    extended.insert(
        "daprRuntimeVersion".into(),
        DAPR_COMPATIBLE_VERSION.to_string(),
    );
    let subscriptions = rt
        .subscriptions
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let s = &rt.settings;
    MetadataSnapshot {
        id: rt.app_id().to_string(),
        runtime_version: format!("sidebus {}", env!("CARGO_PKG_VERSION")),
        components,
        extended,
        subscriptions,
        app: AppConnection {
            port: s.app_port.unwrap_or(0),
            protocol: s.app_protocol.as_str(),
            channel_address: s.app_channel_address.clone(),
            max_concurrency: s.app_max_concurrency.max(0),
        },
    }
}

/// Sets the extended attribute `key` (`PUT /v1.0/metadata/{key}`,
/// `SetMetadata`).
pub fn set_attribute(rt: &Runtime, key: String, value: String) {
    tracing::debug!(%key, "Extended metadata attribute set.");
    rt.extended_metadata
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, value);
}
