//! What each component registers: one [`Factory`] with a pure `validate`
//! step (used by `sidebus validate` and before any port is bound) and an
//! async `build`, both running the component's one config parse
//! (`XConfig::parse(&ComponentSpec)`). The registry (`registry.rs`) collects
//! the factories; a component needs only this file.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use super::{BrokerError, PubSub};
use crate::config::model::ComponentSpec;

pub use crate::config::metadata::{MetadataProblem, Validation};

/// What a factory may need besides the component's own spec.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// The app id (default consumer group, client ids).
    pub app_id: String,
    /// The sidecar's data folder (embedded broker, outbox).
    pub data_dir: PathBuf,
}

/// Builds one kind of component.
#[async_trait]
pub trait Factory: Send + Sync + 'static {
    /// The `spec.type` names this factory serves, e.g. `["pubsub.kafka"]`.
    fn type_names(&self) -> &'static [&'static str];

    /// Checks the metadata without any I/O: the component's config parse
    /// with the config thrown away ([`Validation::of`]).
    fn validate(&self, spec: &ComponentSpec) -> Validation;

    /// Builds the component. May connect to the broker.
    async fn build(
        &self,
        spec: &ComponentSpec,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn PubSub>, BrokerError>;
}
