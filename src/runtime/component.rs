//! One loaded pub/sub component: its resource, the broker behind it and its
//! topic scopes; and the component as a subscription's [`Source`], so the
//! delivery layer gets what it needs without knowing the runtime.

use std::sync::Arc;

use async_trait::async_trait;

use super::scopes::TopicScopes;
use crate::broker::{BrokerError, Handler, PubSub, PublishRequest, SubscribeRequest, Subscription};
use crate::config::model::ComponentSpec;
use crate::delivery::{DeadLetterError, Source};

/// One loaded pub/sub component.
pub struct ComponentHandle {
    /// Its resource.
    pub spec: ComponentSpec,
    /// The broker behind it.
    pub pubsub: Arc<dyn PubSub>,
    /// Topic rules for this app.
    pub scopes: TopicScopes,
}

impl ComponentHandle {
    /// Wraps a built component, reading its topic scopes for `app_id`.
    pub fn new(spec: ComponentSpec, pubsub: Arc<dyn PubSub>, app_id: &str) -> Self {
        let scopes = TopicScopes::from_metadata(&spec.metadata, app_id);
        Self {
            spec,
            pubsub,
            scopes,
        }
    }

    /// The consumer group of this app's subscriptions: component
    /// `consumerGroup`, else `consumerID`, else the app id (so replicas of
    /// one app compete and different apps each get a copy).
    pub fn consumer_group(&self, app_id: &str) -> String {
        self.metadata("consumerGroup")
            .or_else(|| self.metadata("consumerID"))
            .filter(|g| !g.is_empty())
            .unwrap_or(app_id)
            .to_string()
    }

    /// The metadata value of `key` (case-insensitive, as daprd matches).
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.spec
            .metadata
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Debug for ComponentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentHandle")
            .field("name", &self.spec.name)
            .field("type", &self.spec.type_name)
            .finish()
    }
}

#[async_trait]
impl Source for ComponentHandle {
    fn name(&self) -> &str {
        &self.spec.name
    }

    async fn subscribe(
        &self,
        req: SubscribeRequest,
        handler: Arc<dyn Handler>,
    ) -> Result<Subscription, BrokerError> {
        self.pubsub.subscribe(req, handler).await
    }

    async fn publish_dead_letter(&self, letter: PublishRequest) -> Result<(), DeadLetterError> {
        Ok(self.pubsub.publish(letter).await?)
    }
}
