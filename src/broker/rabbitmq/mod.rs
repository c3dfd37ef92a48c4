//! `pubsub.rabbitmq`: RabbitMQ (AMQP 0-9-1) on lapin.
//!
//! Layout: `config.rs` (daprd metadata → [`RabbitConfig`]; broker addresses
//! in `uri.rs`), `connection.rs` (supervised connections that reconnect
//! forever over the host list), `codec.rs` (properties, headers, CloudEvents binary mode), `publisher.rs`
//! (confirms + mandatory), `topology.rs` (queues, bindings, dead letters),
//! `subscriber.rs` (manual acks, prefetch, retry delays).
//!
//! Publishing and consuming use separate connections, so RabbitMQ's flow
//! control on a busy publisher never delays acknowledgements.

pub mod codec;
pub mod config;
pub mod connection;
pub mod publisher;
pub mod subscriber;
pub mod topology;
mod uri;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

pub use config::RabbitConfig;

use self::connection::Link;
use self::publisher::Publisher;
use self::subscriber::Consuming;
use self::topology::QueuePlan;
use super::factory::{BuildContext, Factory, Validation};
use super::{
    BrokerError, Feature, Handler, PubSub, PublishRequest, SubscribeRequest, Subscription,
    Unpublishable,
};
use crate::config::model::ComponentSpec;

/// How long `build` waits for the first connection before returning a
/// component that is not ready yet (readiness then reports it).
const BUILD_WAIT: Duration = Duration::from_secs(5);
/// How long `close` waits for each connection to close.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The RabbitMQ component.
pub struct RabbitMq {
    cfg: Arc<RabbitConfig>,
    publisher: Publisher,
    consume: Arc<Link>,
    closed: CancellationToken,
}

impl RabbitMq {
    /// Publishes no queue was bound to receive that succeeded anyway
    /// (`unroutable: drop`, the default).
    pub fn unroutable_published(&self) -> u64 {
        self.publisher.unroutable_count()
    }

    /// Starts both supervised connections without waiting for them.
    pub fn start(cfg: RabbitConfig) -> Self {
        let cfg = Arc::new(cfg);
        let closed = CancellationToken::new();
        let publish = Link::start(cfg.clone(), "publish", closed.clone());
        let consume = Arc::new(Link::start(cfg.clone(), "consume", closed.clone()));
        Self {
            publisher: Publisher::new(cfg.clone(), publish),
            cfg,
            consume,
            closed,
        }
    }

    /// Starts and waits up to `wait` until both connections are up.
    pub async fn connect(cfg: RabbitConfig, wait: Duration) -> Result<Self, BrokerError> {
        let this = Self::start(cfg);
        this.wait_ready(wait).await?;
        Ok(this)
    }

    /// Waits up to `wait` until both connections are up.
    pub async fn wait_ready(&self, wait: Duration) -> Result<(), BrokerError> {
        let deadline = tokio::time::Instant::now() + wait;
        self.publisher.wait_connected(wait).await?;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.consume.wait_live(left).await.map(|_| ())
    }

    /// The parsed configuration.
    pub fn config(&self) -> &RabbitConfig {
        &self.cfg
    }
}

#[async_trait]
impl PubSub for RabbitMq {
    fn features(&self) -> &[Feature] {
        &[Feature::MessageTtl]
    }

    async fn publish(&self, req: PublishRequest) -> Result<(), BrokerError> {
        if self.closed.is_cancelled() {
            return Err(BrokerError::Closed);
        }
        self.publisher.publish(&req).await
    }

    fn check(&self, req: &PublishRequest) -> Result<(), Unpublishable> {
        codec::check(&self.cfg, req)
    }

    async fn subscribe(
        &self,
        req: SubscribeRequest,
        handler: Arc<dyn Handler>,
    ) -> Result<Subscription, BrokerError> {
        if self.closed.is_cancelled() {
            return Err(BrokerError::Closed);
        }
        let consuming = Consuming {
            cfg: self.cfg.clone(),
            link: self.consume.clone(),
            plan: QueuePlan::new(&self.cfg, &req.topic, &req.group, &req.metadata)?,
            handler,
            cancel: self.closed.child_token(),
        };
        // Set up synchronously when connected, so a bad topology (e.g. a
        // queue declared elsewhere with other arguments) fails the call and
        // events published after it returns are already routed to the queue.
        // During an outage the task sets itself up once reconnected.
        let first = match self.consume.current() {
            Some(live) => match subscriber::open(&consuming, &live).await {
                Ok(session) => Some(session),
                Err(err @ BrokerError::Rejected(_)) => return Err(err),
                Err(err) => {
                    tracing::warn!(topic = %req.topic, error = %err, "RabbitMQ subscription deferred until reconnected.");
                    None
                }
            },
            None => None,
        };
        let cancel = consuming.cancel.clone();
        let task = tokio::spawn(subscriber::run(consuming, first));
        Ok(Subscription::new(cancel, task))
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        if self.closed.is_cancelled() {
            return Err(BrokerError::Closed);
        }
        if self.publisher.connected() && self.consume.current().is_some() {
            Ok(())
        } else {
            Err(BrokerError::Unavailable("not connected to RabbitMQ".into()))
        }
    }

    async fn close(&self) -> Result<(), BrokerError> {
        // Publishes are confirmed before they return, so nothing is buffered:
        // closing stops subscriptions and closes both connections.
        self.closed.cancel();
        self.publisher.link().join(CLOSE_WAIT).await;
        self.consume.join(CLOSE_WAIT).await;
        Ok(())
    }
}

/// Factory for `pubsub.rabbitmq`.
pub struct RabbitMqFactory;

#[async_trait]
impl Factory for RabbitMqFactory {
    fn type_names(&self) -> &'static [&'static str] {
        &["pubsub.rabbitmq"]
    }

    fn validate(&self, spec: &ComponentSpec) -> Validation {
        Validation::of(&RabbitConfig::parse(&spec.metadata))
    }

    async fn build(
        &self,
        spec: &ComponentSpec,
        _ctx: &BuildContext,
    ) -> Result<Arc<dyn PubSub>, BrokerError> {
        let cfg = RabbitConfig::parse(&spec.metadata)
            .map_err(|v| BrokerError::Rejected(v.describe_errors()))?
            .config;
        let component = RabbitMq::start(cfg);
        if let Err(err) = component.wait_ready(BUILD_WAIT).await {
            // Not fatal: the supervisors keep trying and readiness reports it.
            tracing::warn!(component = %spec.name, error = %err, "RabbitMQ not reachable yet; will keep trying.");
        }
        Ok(Arc::new(component))
    }
}

#[cfg(test)]
mod tests;
