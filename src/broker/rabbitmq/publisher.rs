//! Publishing with publisher confirms and `mandatory`, always.
//!
//! Every publish goes to the exchange named after the topic on one shared
//! confirm-mode channel; lapin matches confirms to publishes by delivery tag,
//! so concurrent publishes pipeline on the channel instead of waiting for
//! each other. A publish succeeds only when the broker confirms it; a nack is
//! [`BrokerError::Rejected`], a missing or lost connection is
//! [`BrokerError::Unavailable`] (the caller's retry or outbox decides). An
//! unroutable return (no queue bound to the exchange) succeeds, counted and
//! logged once per topic, as daprd's publish without `mandatory` does; with
//! `unroutable: error` it is `Rejected`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Confirmation};

use super::codec;
use super::config::{RabbitConfig, Unroutable};
use super::connection::{Link, Live};
use crate::broker::{BrokerError, PublishRequest};

/// How long a publish waits for a connection during an outage before it
/// fails with `Unavailable`.
pub const CONNECT_WAIT: Duration = Duration::from_secs(5);
/// Upper bound on waiting for the broker's confirm.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// Maps a lapin error: protocol errors about the request are permanent,
/// everything else (I/O, closed channel or connection) is transient.
pub fn map_err(what: &str, err: lapin::Error) -> BrokerError {
    match err.kind() {
        lapin::ErrorKind::ProtocolError(amqp) if err.is_amqp_soft_error() => {
            BrokerError::Rejected(format!("{what}: {amqp}"))
        }
        _ => BrokerError::Unavailable(format!("{what}: {err}")),
    }
}

/// Declares the topic's exchange once per connection.
pub async fn ensure_exchange(
    live: &Live,
    channel: &Channel,
    cfg: &RabbitConfig,
    topic: &str,
) -> Result<(), BrokerError> {
    let known = live
        .declared
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(topic);
    if known {
        return Ok(());
    }
    let opts = ExchangeDeclareOptions {
        durable: cfg.durable,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            codec::short(topic, "the topic")?,
            cfg.exchange_kind.to_lapin(),
            opts,
            FieldTable::default(),
        )
        .await
        .map_err(|e| map_err("declaring the exchange", e))?;
    live.declared
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(topic.to_string());
    Ok(())
}

/// Topics remembered for the once-per-topic unroutable warning; past this
/// many, later topics are only counted.
const WARNED_TOPICS: usize = 1024;

/// The publishing half of the component.
pub struct Publisher {
    cfg: Arc<RabbitConfig>,
    link: Link,
    unroutable: AtomicU64,
    warned: Mutex<HashSet<String>>,
}

impl Publisher {
    /// A publisher on its own supervised connection.
    pub fn new(cfg: Arc<RabbitConfig>, link: Link) -> Self {
        Self {
            cfg,
            link,
            unroutable: AtomicU64::new(0),
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// Publishes that no queue was bound to receive (and that succeeded,
    /// under the default `unroutable: drop`).
    pub fn unroutable_count(&self) -> u64 {
        self.unroutable.load(Ordering::Relaxed)
    }

    /// Counts an unroutable publish and warns the first time per topic.
    fn note_unroutable(&self, topic: &str) {
        self.unroutable.fetch_add(1, Ordering::Relaxed);
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if warned.len() < WARNED_TOPICS && warned.insert(topic.to_string()) {
            tracing::warn!(topic, "Published to a topic no queue is bound to; RabbitMQ dropped the event (as daprd would). Further drops on this topic are only counted.");
        }
    }

    /// The publish connection.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Whether the publish connection is up (readiness).
    pub fn connected(&self) -> bool {
        self.link.current().is_some()
    }

    /// Waits up to `wait` for the publish connection.
    pub async fn wait_connected(&self, wait: Duration) -> Result<(), BrokerError> {
        self.link.wait_live(wait).await.map(|_| ())
    }

    /// Publishes one event and waits for the broker's confirm.
    pub async fn publish(&self, req: &PublishRequest) -> Result<(), BrokerError> {
        let out = codec::encode(&self.cfg, req)?;
        let routing_key = out.routing_key.to_string();
        let live = self.link.wait_live(CONNECT_WAIT).await?;
        let channel = live
            .publish_channel()
            .await
            .map_err(|e| map_err("opening the publish channel", e))?;
        ensure_exchange(&live, &channel, &self.cfg, &req.topic).await?;
        let opts = BasicPublishOptions {
            mandatory: true,
            immediate: false,
        };
        let sent = async {
            let confirm = channel
                .basic_publish(
                    out.exchange,
                    out.routing_key,
                    opts,
                    &out.body,
                    out.properties,
                )
                .await?;
            confirm.await
        };
        let confirmation = match tokio::time::timeout(CONFIRM_TIMEOUT, sent).await {
            Ok(Ok(c)) => c,
            outcome => {
                // The channel may have died because the exchange vanished
                // (deleted by an operator): declare it again next time. The
                // broker may or may not have the event, so the caller's retry
                // decides (at-least-once).
                live.declared
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&req.topic);
                return Err(BrokerError::Unavailable(match outcome {
                    Ok(Err(e)) => format!("publishing: {e}"),
                    _ => format!("no publisher confirm within {CONFIRM_TIMEOUT:?}"),
                }));
            }
        };
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) if self.cfg.unroutable == Unroutable::Drop => {
                self.note_unroutable(&req.topic);
                Ok(())
            }
            Confirmation::Ack(Some(ret)) | Confirmation::Nack(Some(ret)) => {
                Err(BrokerError::Rejected(format!(
                    "unroutable: no queue is bound to topic {:?} for routing key {:?} ({} {})",
                    req.topic, routing_key, ret.reply_code, ret.reply_text
                )))
            }
            Confirmation::Nack(None) => Err(BrokerError::Rejected(format!(
                "RabbitMQ refused the event for topic {:?} (nack)",
                req.topic
            ))),
            // Only possible if confirm mode were off, which `publish_channel`
            // never allows; treat it as the connection being unusable.
            Confirmation::NotRequested => Err(BrokerError::Unavailable(
                "publish channel is not in confirm mode".into(),
            )),
        }
    }
}
