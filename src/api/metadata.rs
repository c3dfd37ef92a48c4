//! The transport-neutral part of daprd's metadata API: what the sidecar
//! reports about itself. The HTTP edge renders it as daprd's JSON, the gRPC
//! edge as `GetMetadataResponse`; both set attributes through
//! [`set_attribute`].

use std::collections::BTreeMap;

use crate::api::error::ApiError;
use crate::config::model::SubscriptionSpec;
use crate::runtime::Runtime;

/// Most extended attributes (`PUT /v1.0/metadata/{key}`, `SetMetadata`)
/// held at once: any caller may set them, and each one lives as long as
/// the process.
pub const MAX_ATTRIBUTES: usize = 128;
/// Longest extended attribute key, in bytes.
pub const MAX_ATTRIBUTE_KEY_BYTES: usize = 256;
/// Longest extended attribute value, in bytes.
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 4096;

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
pub fn set_attribute(rt: &Runtime, key: String, value: String) -> Result<(), ApiError> {
    if key.len() > MAX_ATTRIBUTE_KEY_BYTES || value.len() > MAX_ATTRIBUTE_VALUE_BYTES {
        return Err(ApiError::MetadataLimit(format!(
            "an extended attribute's key may have at most {MAX_ATTRIBUTE_KEY_BYTES} bytes \
             and its value {MAX_ATTRIBUTE_VALUE_BYTES} (got {} and {})",
            key.len(),
            value.len()
        )));
    }
    let mut attrs = rt
        .extended_metadata
        .write()
        .unwrap_or_else(|e| e.into_inner());
    if !attrs.contains_key(&key) && attrs.len() >= MAX_ATTRIBUTES {
        return Err(ApiError::MetadataLimit(format!(
            "at most {MAX_ATTRIBUTES} extended attributes may be set; \
             {key:.64} would be one more"
        )));
    }
    tracing::debug!(%key, "Extended metadata attribute set.");
    attrs.insert(key, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    /// Anyone who can reach the API may set attributes; each lives as long
    /// as the process, so the map must not grow without bound.
    #[test]
    fn extended_attributes_are_bounded() {
        let rt = Runtime::new(Settings::default(), Vec::new());
        for i in 0..MAX_ATTRIBUTES {
            set_attribute(&rt, format!("k{i}"), "v".into()).expect("within bounds");
        }
        let more = set_attribute(&rt, "one-more".into(), "v".into());
        assert!(matches!(more, Err(ApiError::MetadataLimit(_))), "{more:?}");
        set_attribute(&rt, "k0".into(), "replaced".into()).expect("replacing is not growing");
        let long_key = set_attribute(&rt, "k".repeat(MAX_ATTRIBUTE_KEY_BYTES + 1), String::new());
        assert!(matches!(long_key, Err(ApiError::MetadataLimit(_))));
        let long_value = set_attribute(&rt, "k1".into(), "v".repeat(MAX_ATTRIBUTE_VALUE_BYTES + 1));
        assert!(matches!(long_value, Err(ApiError::MetadataLimit(_))));
        let attrs = rt
            .extended_metadata
            .read()
            .unwrap_or_else(|e| e.into_inner());
        assert_eq!(attrs.len(), MAX_ATTRIBUTES);
        assert_eq!(attrs.get("k0").map(String::as_str), Some("replaced"));
        assert_eq!(ApiError::MetadataLimit(String::new()).http_status(), 400);
    }
}
