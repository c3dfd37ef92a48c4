//! Builds components from their `spec.type`: every component's
//! [`Factory`] (`factory.rs`) compiled into this binary, by type name.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::factory::{Factory, Validation};
use crate::config::model::ComponentSpec;
use crate::config::resources::ComponentTypes;

/// All component factories compiled into this binary, keyed by `spec.type`.
pub struct Registry {
    factories: BTreeMap<&'static str, Arc<dyn Factory>>,
}

impl Registry {
    /// The registry with every component enabled by cargo features.
    pub fn builtin() -> Self {
        let mut reg = Self {
            factories: BTreeMap::new(),
        };
        reg.register(Arc::new(super::in_memory::InMemoryFactory));
        #[cfg(feature = "embedded")]
        reg.register(Arc::new(super::embedded::EmbeddedFactory));
        #[cfg(feature = "rabbitmq")]
        reg.register(Arc::new(super::rabbitmq::RabbitMqFactory));
        #[cfg(feature = "kafka")]
        reg.register(Arc::new(super::kafka::KafkaFactory));
        reg
    }

    /// Adds a factory under each of its type names.
    pub fn register(&mut self, factory: Arc<dyn Factory>) {
        for name in factory.type_names() {
            self.factories.insert(name, factory.clone());
        }
    }

    /// The factory for a `spec.type`, if compiled in.
    pub fn get(&self, type_name: &str) -> Option<&Arc<dyn Factory>> {
        self.factories.get(type_name)
    }

    /// Every known `spec.type`, sorted.
    pub fn type_names(&self) -> Vec<&'static str> {
        self.factories.keys().copied().collect()
    }

    /// The type of the component created when no resources path is given.
    pub fn default_type(&self) -> &'static str {
        if self.factories.contains_key("pubsub.embedded") {
            "pubsub.embedded"
        } else {
            "pubsub.in-memory"
        }
    }
}

/// Resource loading (in `config`) sees the registry through this trait.
impl ComponentTypes for Registry {
    fn type_names(&self) -> Vec<&'static str> {
        Registry::type_names(self)
    }

    fn default_type(&self) -> &'static str {
        Registry::default_type(self)
    }

    fn validate(&self, spec: &ComponentSpec) -> Option<Validation> {
        self.get(&spec.type_name).map(|f| f.validate(spec))
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("types", &self.type_names())
            .finish()
    }
}
