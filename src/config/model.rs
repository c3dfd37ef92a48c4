//! The validated, typed view of the resources sidebus runs with. Parsing and
//! validation (`resources.rs`, `validate.rs`) produce these; every other part
//! of sidebus consumes only these types.

use std::path::PathBuf;

use crate::config::metadata::Metadata;

/// A pub/sub `Component` resource, with secrets resolved and templates
/// (`{appID}`, `{uuid}`, …) expanded. Its `Debug` masks metadata values
/// that look secret (resolved `secretKeyRef`s are in there).
#[derive(Clone, PartialEq, Eq)]
pub struct ComponentSpec {
    /// `metadata.name`: the pubsub name apps use.
    pub name: String,
    /// `spec.type`, e.g. `pubsub.kafka`.
    pub type_name: String,
    /// `spec.version`, `v1` when absent.
    pub version: String,
    /// `spec.metadata` as a flat map, values resolved.
    pub metadata: Metadata,
    /// App ids allowed to use the component; empty = all.
    pub scopes: Vec<String>,
    /// Where it was read from (`<default>` for the built-in component).
    pub source: PathBuf,
}

impl std::fmt::Debug for ComponentSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let metadata: std::collections::BTreeMap<&str, String> = self
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), super::metadata::shown_value(k, v)))
            .collect();
        f.debug_struct("ComponentSpec")
            .field("name", &self.name)
            .field("type_name", &self.type_name)
            .field("version", &self.version)
            .field("metadata", &metadata)
            .field("scopes", &self.scopes)
            .field("source", &self.source)
            .finish()
    }
}

/// One routing rule: a CEL `match` (empty = always) and the app path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteRule {
    /// CEL expression over `event`; empty matches everything.
    pub match_expr: String,
    /// App route that receives matching events.
    pub path: String,
}

/// Bulk subscribe settings of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkSubscribe {
    /// Whether events are delivered in batches.
    pub enabled: bool,
    /// Largest batch (default 100).
    pub max_messages_count: u32,
    /// Longest wait to fill a batch in milliseconds (default 1000).
    pub max_await_duration_ms: u64,
}

impl Default for BulkSubscribe {
    fn default() -> Self {
        Self {
            enabled: false,
            max_messages_count: 100,
            max_await_duration_ms: 1000,
        }
    }
}

/// Where a subscription came from (reported by the metadata API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionKind {
    /// A `Subscription` resource.
    Declarative,
    /// Returned by the app's `GET /dapr/subscribe` / `ListTopicSubscriptions`.
    Programmatic,
    /// A gRPC streaming subscription.
    Streaming,
}

impl SubscriptionKind {
    /// daprd's name for the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionKind::Declarative => "DECLARATIVE",
            SubscriptionKind::Programmatic => "PROGRAMMATIC",
            SubscriptionKind::Streaming => "STREAMING",
        }
    }
}

/// A subscription of any origin, normalised: rules in evaluation order, the
/// default route (if any) last as a rule with an empty match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSpec {
    /// Resource name (declarative) or `<pubsub>-<topic>` for others.
    pub name: String,
    /// Pub/sub component name.
    pub pubsub_name: String,
    /// Topic to consume.
    pub topic: String,
    /// Routing rules, evaluated in order; the default route is last.
    pub rules: Vec<RouteRule>,
    /// Dead-letter topic on the same pubsub, if any.
    pub dead_letter_topic: Option<String>,
    /// Subscription metadata (`rawPayload`, `ordering`, `maxInFlight`, …).
    pub metadata: Metadata,
    /// Bulk delivery settings.
    pub bulk: BulkSubscribe,
    /// App ids this subscription applies to; empty = all.
    pub scopes: Vec<String>,
    /// Origin.
    pub kind: SubscriptionKind,
}

/// A parsed `Resiliency` resource (validated now, applied by the policy layer).
#[derive(Debug, Clone, PartialEq)]
pub struct ResiliencySpec {
    /// `metadata.name`.
    pub name: String,
    /// The raw `spec` section, kept for the policy layer.
    pub spec: serde_json::Value,
    /// App ids it applies to; empty = all.
    pub scopes: Vec<String>,
    /// Where it was read from.
    pub source: PathBuf,
}

/// Everything loaded from the resources paths.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    /// Pub/sub components, in load order.
    pub components: Vec<ComponentSpec>,
    /// Declarative subscriptions, in manifest order.
    pub subscriptions: Vec<SubscriptionSpec>,
    /// Resiliency resources.
    pub resiliencies: Vec<ResiliencySpec>,
}

#[cfg(test)]
impl ComponentSpec {
    /// A component `ps` of `type_name` with `md`, for unit tests.
    pub(crate) fn for_test(type_name: &str, md: &[(&str, &str)]) -> Self {
        Self {
            name: "ps".into(),
            type_name: type_name.into(),
            version: "v1".into(),
            metadata: crate::config::metadata::test_metadata(md),
            scopes: Vec::new(),
            source: std::path::PathBuf::new(),
        }
    }
}
