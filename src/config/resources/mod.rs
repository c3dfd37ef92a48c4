//! Resource folders (Component, Subscription, Resiliency YAML, as daprd
//! reads them) → the typed [`Resources`]. Every problem in every file is
//! collected before returning, so one run lists everything to fix.
//!
//! - `documents.rs`   folders → files → `---` documents; YAML helpers
//! - `component.rs`   `kind: Component` (secrets, templates, factory validate)
//! - `subscription.rs` `kind: Subscription` v1alpha1 / v2alpha1
//! - `resiliency.rs`  `kind: Resiliency` typed policies (+ `resiliency_parse.rs`)
//! - `load.rs`        the passes across documents (scopes, duplicates, references)

mod component;
mod documents;
mod load;
pub mod resiliency;
mod resiliency_parse;
mod subscription;

use std::path::PathBuf;

use crate::config::error::ConfigError;
use crate::config::metadata::{Metadata, Validation};
use crate::config::model::{ComponentSpec, Resources};
use crate::config::secrets::SecretResolver;
use crate::config::template::TemplateContext;

pub use resiliency::{
    AppliedPolicies, Backoff, CircuitBreakerPolicy, ComponentTargets, Direction, PolicyProblem,
    ResiliencyPolicies, RetryPolicy, StatusMatching, TargetPolicies,
};

/// What resource loading needs to know about component types. The
/// component registry (`broker::registry::Registry`) implements it, so config does not
/// depend on the brokers.
pub trait ComponentTypes {
    /// Every known `spec.type`, sorted.
    fn type_names(&self) -> Vec<&'static str>;

    /// The type of the component used when no resources path is given.
    fn default_type(&self) -> &'static str;

    /// The component's own check of its metadata (its config parse with the
    /// config thrown away), or `None` when the type is unknown.
    fn validate(&self, spec: &ComponentSpec) -> Option<Validation>;
}

/// The result of a successful load.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Components, subscriptions and resiliencies that apply to this app.
    pub resources: Resources,
    /// Problems sidebus starts anyway with (ignored resources and keys,
    /// duplicate subscriptions, targets of absent components).
    pub warnings: Vec<ConfigError>,
}

/// Reads every `*.yaml` / `*.yml` file of each folder (sorted, not
/// recursive) and returns the resources for `app_id`, or every error found.
/// An empty `app_id` applies no scopes (every resource is checked).
pub fn load(
    paths: &[PathBuf],
    app_id: &str,
    types: &dyn ComponentTypes,
) -> Result<Loaded, Vec<ConfigError>> {
    let env = LoadEnv {
        app_id: app_id.to_string(),
        templates: TemplateContext::from_env(app_id),
        secrets: SecretResolver::from_env(),
    };
    load::run(paths, &env, types)
}

/// The component used when no resources path is given: `pubsub` of the
/// registry's default type, with `consumerID` = app id.
pub fn default_component(types: &dyn ComponentTypes, app_id: &str) -> ComponentSpec {
    let mut metadata = Metadata::new();
    metadata.insert("consumerID".to_string(), app_id.to_string());
    ComponentSpec {
        name: "pubsub".to_string(),
        type_name: types.default_type().to_string(),
        version: "v1".to_string(),
        metadata,
        scopes: Vec::new(),
        source: PathBuf::from("<default>"),
    }
}

/// What a load depends on besides the files.
#[derive(Debug, Clone)]
pub(crate) struct LoadEnv {
    /// The app id (scopes, templates, `consumerID`).
    pub app_id: String,
    /// Template values.
    pub templates: TemplateContext,
    /// Secret lookup.
    pub secrets: SecretResolver,
}

/// The identity of one document, used to locate its problems.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    /// The file.
    pub file: PathBuf,
    /// `Kind/name`, or `<document N>` without a name.
    pub label: String,
    /// `apiVersion`.
    pub api_version: String,
    /// `metadata.name`.
    pub name: String,
    /// Top-level `scopes`.
    pub scopes: Vec<String>,
}

/// Collected errors and warnings.
#[derive(Debug, Default)]
pub(crate) struct Sink {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
}

impl Sink {
    pub fn error(&mut self, h: &Header, field: &str, value: &str, reason: impl Into<String>) {
        self.errors
            .push(ConfigError::field(&h.file, &h.label, field, value, reason));
    }

    pub fn warn(&mut self, h: &Header, field: &str, value: &str, reason: impl Into<String>) {
        self.warnings
            .push(ConfigError::field(&h.file, &h.label, field, value, reason));
    }
}

/// Whether a resource with `scopes` applies to `app_id` (empty app id:
/// everything applies, so `sidebus validate` checks every resource).
pub(crate) fn in_scope(scopes: &[String], app_id: &str) -> bool {
    app_id.is_empty() || scopes.is_empty() || scopes.iter().any(|s| s == app_id)
}

/// Whether some app would see both resources (only then do duplicate
/// names collide).
pub(crate) fn scopes_overlap(a: &[String], b: &[String]) -> bool {
    a.is_empty() || b.is_empty() || a.iter().any(|x| b.contains(x))
}
