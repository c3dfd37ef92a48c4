//! The component a subscription reads from, as the delivery layer needs it.
//! The runtime resolves each subscription to its component (scopes, unknown
//! pubsub names) and hands delivery a [`Source`]; delivery never looks the
//! sidecar's state up itself.

use std::sync::Arc;

use async_trait::async_trait;

use crate::broker::{BrokerError, Handler, PublishRequest, SubscribeRequest, Subscription};

/// Why a dead letter could not be published; only logged, so any error will
/// do.
pub type DeadLetterError = Box<dyn std::error::Error + Send + Sync>;

/// A pub/sub component seen from one subscription.
#[async_trait]
pub trait Source: Send + Sync + 'static {
    /// The component's name, for logs.
    fn name(&self) -> &str;

    /// Starts consuming on the component (see `PubSub::subscribe`).
    async fn subscribe(
        &self,
        req: SubscribeRequest,
        handler: Arc<dyn Handler>,
    ) -> Result<Subscription, BrokerError>;

    /// Publishes a dead letter the way any publish of this component goes,
    /// so a letter takes the component's outbox when it has one.
    async fn publish_dead_letter(&self, letter: PublishRequest) -> Result<(), DeadLetterError>;
}
