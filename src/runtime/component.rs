//! One loaded pub/sub component: its resource, the broker behind it, its
//! publish outbox when it has one, and its topic scopes. Every publish of
//! the component goes through [`ComponentHandle::publish`], so it takes the
//! outbox when there is one; and the component is a subscription's
//! [`Source`], so the delivery layer gets what it needs without knowing the
//! runtime.

use std::sync::Arc;

use async_trait::async_trait;

use super::scopes::TopicScopes;
use crate::broker::{
    BrokerError, Handler, PubSub, PublishRequest, SubscribeRequest, Subscription, Unpublishable,
};
use crate::config::model::ComponentSpec;
use crate::delivery::{DeadLetterError, Source};
#[cfg(feature = "embedded")]
use crate::policy::outbox::{Outbox, OutboxError};

/// What a successful publish did, beyond "the event is safe".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishReceipt {
    /// True when the event sits in the component's durable outbox (fsynced)
    /// and its forwarder will hand it to the broker later, rather than the
    /// broker having confirmed it already.
    pub buffered: bool,
}

/// Why a component did not take an event. `Display` is the cause alone.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// The broker could never take this request (checked before anything
    /// was stored).
    #[error(transparent)]
    Invalid(#[from] Unpublishable),
    /// The broker failed or refused.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The broker is away and the component's outbox is full.
    #[error("{reason}")]
    OutboxFull {
        /// The outbox's explanation (used / limit).
        reason: String,
        /// Seconds a caller should wait before retrying.
        retry_after_secs: u64,
    },
}

#[cfg(feature = "embedded")]
impl From<OutboxError> for ComponentError {
    fn from(err: OutboxError) -> Self {
        match err {
            OutboxError::Broker(err) => ComponentError::Broker(err),
            OutboxError::Full {
                retry_after_secs, ..
            } => ComponentError::OutboxFull {
                reason: err.to_string(),
                retry_after_secs,
            },
        }
    }
}

/// One loaded pub/sub component.
pub struct ComponentHandle {
    /// Its resource.
    pub spec: ComponentSpec,
    /// The broker behind it.
    pub pubsub: Arc<dyn PubSub>,
    /// Topic rules for this app.
    pub scopes: TopicScopes,
    /// The durable publish outbox in front of the broker, when configured.
    #[cfg(feature = "embedded")]
    pub outbox: Option<Arc<Outbox>>,
}

impl ComponentHandle {
    /// Wraps a built component, reading its topic scopes for `app_id`.
    pub fn new(spec: ComponentSpec, pubsub: Arc<dyn PubSub>, app_id: &str) -> Self {
        let scopes = TopicScopes::from_metadata(&spec.metadata, app_id);
        Self {
            spec,
            pubsub,
            scopes,
            #[cfg(feature = "embedded")]
            outbox: None,
        }
    }

    /// The same component, publishing through `outbox` when it is `Some`.
    #[cfg(feature = "embedded")]
    pub fn with_outbox(self, outbox: Option<Arc<Outbox>>) -> Self {
        Self { outbox, ..self }
    }

    /// Publishes one event: through the outbox when the component has one
    /// (which may buffer it), else straight to the broker. What the broker
    /// could never take is refused first, so nothing it refuses is buffered.
    pub async fn publish(&self, req: PublishRequest) -> Result<PublishReceipt, ComponentError> {
        self.pubsub.check(&req)?;
        #[cfg(feature = "embedded")]
        if let Some(outbox) = &self.outbox {
            let receipt = outbox.publish(req).await?;
            return Ok(PublishReceipt {
                buffered: receipt.buffered,
            });
        }
        self.pubsub.publish(req).await?;
        Ok(PublishReceipt::default())
    }

    /// Publishes several events, one result per request in order: the
    /// component's bulk publish, or one outbox publish per event.
    pub async fn publish_bulk(&self, reqs: Vec<PublishRequest>) -> Vec<Result<(), ComponentError>> {
        // Entries the broker could never take fail alone; the rest go on.
        let checked: Vec<Result<(), Unpublishable>> =
            reqs.iter().map(|r| self.pubsub.check(r)).collect();
        if checked.iter().any(Result::is_err) {
            let valid = reqs
                .into_iter()
                .zip(&checked)
                .filter(|(_, c)| c.is_ok())
                .map(|(r, _)| r)
                .collect();
            let mut sent = self.publish_checked_bulk(valid).await.into_iter();
            return checked
                .into_iter()
                .map(|c| match c {
                    Err(invalid) => Err(ComponentError::Invalid(invalid)),
                    Ok(()) => sent.next().unwrap_or_else(|| {
                        Err(ComponentError::Broker(BrokerError::Unavailable(
                            "the component answered fewer bulk results than entries".into(),
                        )))
                    }),
                })
                .collect();
        }
        self.publish_checked_bulk(reqs).await
    }

    /// [`publish_bulk`](Self::publish_bulk) of entries already checked.
    async fn publish_checked_bulk(
        &self,
        reqs: Vec<PublishRequest>,
    ) -> Vec<Result<(), ComponentError>> {
        #[cfg(feature = "embedded")]
        if let Some(outbox) = &self.outbox {
            let each = reqs.into_iter().map(|r| async move {
                outbox
                    .publish(r)
                    .await
                    .map(drop)
                    .map_err(ComponentError::from)
            });
            return futures_util::future::join_all(each).await;
        }
        let results = self.pubsub.publish_bulk(reqs).await;
        results
            .into_iter()
            .map(|r| r.map_err(ComponentError::from))
            .collect()
    }

    /// Stops the outbox's forwarder (if any), then flushes and releases the
    /// broker connection.
    pub async fn close(&self) -> Result<(), BrokerError> {
        #[cfg(feature = "embedded")]
        if let Some(outbox) = &self.outbox {
            outbox.close().await;
        }
        self.pubsub.close().await
    }

    /// True when publishes are accepted while the broker is away (the
    /// component has a publish outbox).
    pub fn buffers_while_away(&self) -> bool {
        #[cfg(feature = "embedded")]
        return self.outbox.is_some();
        #[cfg(not(feature = "embedded"))]
        false
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
        self.publish(letter).await?;
        Ok(())
    }
}
