//! The durable publish outbox (`docs/outbox.md`): a handle the runtime
//! holds in front of a remote broker component and publishes through.
//! While the broker answers, publishes go straight through. When it is
//! unreachable (a retriable error, or no
//! confirm within [`OutboxConfig::direct_timeout`]), the event is appended
//! to a local fsynced log before the caller hears success (with
//! `buffered: true`), and a [forwarder](forwarder::Forwarder) sends it once
//! the broker is back. While anything is buffered, every new publish of the
//! component is buffered too, so the broker sees events in publish order
//! (per key, per topic, and across the component). Events of one key that
//! are published concurrently go through the direct path one at a time:
//! otherwise a slow first one could end up buffered while a later one
//! reached the broker directly, ahead of it.

pub mod config;
pub mod forwarder;
pub mod store;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use self::config::{OutboxConfig, OutboxConfigError};
use self::forwarder::Forwarder;
use self::store::Store;
pub use self::store::{OutboxDepth, StoreError};
use crate::broker::{BrokerError, PubSub, PublishRequest};

/// What a caller refused with a full outbox is told to wait, in seconds.
pub const RETRY_AFTER_SECS: u64 = 5;

/// What a publish through the outbox became.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Receipt {
    /// True when the event sits in the durable local outbox (fsynced) and
    /// the forwarder will hand it to the broker later, rather than the
    /// broker having confirmed it already.
    pub buffered: bool,
}

/// Why the outbox did not take an event.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The broker refused the event for good, or it is away and the log
    /// failed too.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The broker is away and the outbox holds `outboxMaxBytes` already.
    #[error("publish outbox is full ({used} of {limit} bytes); retry after {retry_after_secs}s")]
    Full {
        /// Bytes buffered now.
        used: u64,
        /// The configured bound.
        limit: u64,
        /// Seconds a caller should wait before retrying.
        retry_after_secs: u64,
    },
}

/// The durable publish outbox of one component.
pub struct Outbox {
    cfg: OutboxConfig,
    inner: Arc<dyn PubSub>,
    store: Arc<Store>,
    cancel: CancellationToken,
    forwarder: Mutex<Option<JoinHandle<()>>>,
    keys: KeyTurns,
}

/// One turn at a time per (topic, key) on the direct path. Entries exist
/// only while some publish of that key is in flight, so the map is bounded
/// by the publishes in flight.
#[derive(Default)]
struct KeyTurns(std::sync::Mutex<HashMap<KeyId, Arc<Mutex<()>>>>);

/// A key's identity: (topic, key).
type KeyId = (String, String);

impl KeyTurns {
    /// The turn of `req`'s key (`None` for unkeyed events, which carry no
    /// order among themselves).
    fn turn(&self, req: &PublishRequest) -> Option<Turn<'_>> {
        let id = (req.topic.clone(), req.key.clone()?);
        let mut turns = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let lock = turns.entry(id.clone()).or_default().clone();
        Some(Turn {
            turns: self,
            id,
            lock,
        })
    }
}

/// A publish's claim on its key; dropping it (also when the publish is
/// abandoned midway) forgets the key once nobody else wants it.
struct Turn<'a> {
    turns: &'a KeyTurns,
    id: KeyId,
    lock: Arc<Mutex<()>>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut turns = self.turns.0.lock().unwrap_or_else(|e| e.into_inner());
        // The map's copy and ours: nobody else holds or waits for it.
        if Arc::strong_count(&self.lock) == 2 {
            turns.remove(&self.id);
        }
    }
}

impl Outbox {
    /// Opens the outbox folder (draining what a previous run left) and
    /// starts the forwarder. Must run inside a Tokio runtime.
    pub async fn open(cfg: OutboxConfig, inner: Arc<dyn PubSub>) -> Result<Self, StoreError> {
        let (dir, max) = (cfg.dir.clone(), cfg.max_bytes);
        let (store, from) = tokio::task::spawn_blocking(move || Store::open(&dir, max))
            .await
            .map_err(|e| {
                StoreError::Log(crate::broker::embedded::error::EmbeddedError::io(
                    "open",
                    &cfg.dir,
                    std::io::Error::other(e.to_string()),
                ))
            })??;
        let store = Arc::new(store);
        let depth = store.depth();
        tracing::info!(component = %cfg.component, dir = %cfg.dir.display(), events = depth.events, bytes = depth.bytes, max_bytes = depth.max_bytes, "Publish outbox open.");
        let cancel = CancellationToken::new();
        let task = tokio::spawn(
            Forwarder {
                component: cfg.component.clone(),
                store: store.clone(),
                inner: inner.clone(),
                attempt_timeout: cfg.direct_timeout,
                cancel: cancel.clone(),
            }
            .run(from),
        );
        Ok(Self {
            cfg,
            inner,
            store,
            cancel,
            forwarder: Mutex::new(Some(task)),
            keys: KeyTurns::default(),
        })
    }

    /// Events and bytes buffered now.
    pub fn depth(&self) -> OutboxDepth {
        self.store.depth()
    }

    /// Tries the broker directly; `Err(Some(e))` is a permanent failure for
    /// the caller, `Err(None)` means "buffer it".
    async fn direct(&self, req: &PublishRequest) -> Result<(), Option<BrokerError>> {
        match tokio::time::timeout(self.cfg.direct_timeout, self.inner.publish(req.clone())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) if !err.is_retriable() => Err(Some(err)),
            Ok(Err(err)) => {
                tracing::warn!(component = %self.cfg.component, topic = %req.topic, error = %err, "Broker unavailable; buffering in the outbox.");
                Err(None)
            }
            Err(_) => {
                tracing::warn!(component = %self.cfg.component, topic = %req.topic, timeout_ms = self.cfg.direct_timeout.as_millis() as u64, "No broker confirm in time; buffering in the outbox.");
                Err(None)
            }
        }
    }
}

impl Outbox {
    /// Publishes one event: straight to the broker while it answers and
    /// nothing is buffered, else into the durable log (`buffered`).
    pub async fn publish(&self, req: PublishRequest) -> Result<Receipt, OutboxError> {
        let Some(turn) = self.keys.turn(&req) else {
            return self.publish_in_turn(req).await;
        };
        let _held = turn.lock.lock().await;
        self.publish_in_turn(req).await
    }

    /// [`publish`](Self::publish) once no earlier publish of the same key
    /// is still deciding between the broker and the log.
    async fn publish_in_turn(&self, req: PublishRequest) -> Result<Receipt, OutboxError> {
        // A backlog means older events are still on their way: going direct
        // now could overtake them.
        if self.store.depth().events == 0 {
            match self.direct(&req).await {
                Ok(()) => return Ok(Receipt { buffered: false }),
                Err(Some(err)) => return Err(err.into()),
                Err(None) => {}
            }
        }
        match self.store.append(&req).await {
            Ok(offset) => {
                tracing::debug!(component = %self.cfg.component, topic = %req.topic, offset, "Event buffered in the outbox.");
                Ok(Receipt { buffered: true })
            }
            Err(StoreError::Full { used, limit }) => {
                tracing::warn!(component = %self.cfg.component, topic = %req.topic, used, limit, "Outbox full; refusing the publish.");
                Err(OutboxError::Full {
                    used,
                    limit,
                    retry_after_secs: RETRY_AFTER_SECS,
                })
            }
            Err(err) => {
                tracing::error!(component = %self.cfg.component, error = %err, "Cannot buffer in the outbox.");
                Err(BrokerError::Unavailable(format!(
                    "broker unavailable and the outbox failed: {err}"
                ))
                .into())
            }
        }
    }

    /// Stops the forwarder and closes the log; what is left stays on disk
    /// for the next start. The component itself is the caller's to close,
    /// after this: the forwarder publishes through it.
    pub async fn close(&self) {
        self.cancel.cancel();
        if let Some(task) = self.forwarder.lock().await.take() {
            if let Err(err) = task.await {
                tracing::warn!(component = %self.cfg.component, error = %err, "Outbox forwarder ended abnormally.");
            }
        }
        let depth = self.store.depth();
        tracing::info!(component = %self.cfg.component, events = depth.events, bytes = depth.bytes, "Publish outbox closed.");
        let store = self.store.clone();
        if let Err(err) = tokio::task::spawn_blocking(move || store.close()).await {
            tracing::warn!(component = %self.cfg.component, error = %err, "Closing the outbox log failed.");
        }
    }
}

/// Opens the outbox of `inner` when `cfg` is `Some`.
pub async fn open(
    cfg: Option<OutboxConfig>,
    inner: Arc<dyn PubSub>,
) -> Result<Option<Arc<Outbox>>, StoreError> {
    match cfg {
        Some(cfg) => Ok(Some(Arc::new(Outbox::open(cfg, inner).await?))),
        None => Ok(None),
    }
}

/// Direct-publish bound used when none is configured (re-exported for docs).
pub const DEFAULT_DIRECT_TIMEOUT: Duration = config::DEFAULT_DIRECT_TIMEOUT;
