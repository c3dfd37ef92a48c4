//! Helpers shared by the resource-loading tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use sidebus::broker::factory::{BuildContext, Factory, MetadataProblem, Validation};
use sidebus::broker::registry::Registry;
use sidebus::broker::{BrokerError, PubSub};
use sidebus::config::model::{ComponentSpec, RouteRule};
use sidebus::config::resources::{self, Loaded};
use sidebus::config::ConfigError;

pub fn root(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn fixture(name: &str) -> PathBuf {
    root("tests/fixtures/resources").join(name)
}

pub fn load_ok(paths: &[PathBuf], app_id: &str) -> Loaded {
    resources::load(paths, app_id, &Registry::builtin())
        .unwrap_or_else(|errors| panic!("unexpected errors:\n{}", lines(&errors)))
}

pub fn load_err(paths: &[PathBuf], app_id: &str) -> Vec<ConfigError> {
    match resources::load(paths, app_id, &Registry::builtin()) {
        Ok(loaded) => panic!("expected errors, loaded {:?}", loaded.resources),
        Err(errors) => errors,
    }
}

pub fn lines(errors: &[ConfigError]) -> String {
    errors.iter().map(|e| format!("  {e}\n")).collect()
}

pub fn file_name(e: &ConfigError) -> &str {
    e.file
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default()
}

pub fn rule(match_expr: &str, path: &str) -> RouteRule {
    RouteRule {
        match_expr: match_expr.into(),
        path: path.into(),
    }
}

/// A factory for types not compiled into this branch (and for checking how
/// factory problems are reported): requires `brokers`, refuses
/// `password=bad`, warns on `legacy`.
pub struct FakeFactory(pub &'static [&'static str]);

#[async_trait]
impl Factory for FakeFactory {
    fn type_names(&self) -> &'static [&'static str] {
        self.0
    }

    fn validate(&self, spec: &ComponentSpec) -> Validation {
        let mut v = Validation::default();
        let md = &spec.metadata;
        let has = |k: &str| md.get(k).is_some_and(|x| !x.is_empty());
        if !has("brokers") && !has("connectionString") {
            v.errors
                .push(MetadataProblem::new("brokers", "", "is required"));
        }
        if md.get("password").is_some_and(|p| p == "bad") {
            v.errors
                .push(MetadataProblem::new("password", "bad", "too weak"));
        }
        if let Some(x) = md.get("legacy") {
            v.warnings
                .push(MetadataProblem::new("legacy", x, "ignored"));
        }
        v
    }

    async fn build(
        &self,
        _: &ComponentSpec,
        _: &BuildContext,
    ) -> Result<Arc<dyn PubSub>, BrokerError> {
        Ok(Arc::new(sidebus::broker::in_memory::InMemory::new()))
    }
}
