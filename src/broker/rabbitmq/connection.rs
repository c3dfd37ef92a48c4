//! One supervised AMQP connection that reconnects forever.
//!
//! A [`Link`] owns a supervisor task that walks the configured host list,
//! connects, publishes the live connection on a `watch` channel, waits until
//! the connection is lost, and starts over with jittered exponential backoff.
//! We do not use lapin's own recovery because it cannot fail over to another
//! host (daprd's failure in dapr/dapr#8276) and replays consumers we want to
//! re-create with fresh topology ourselves.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::ConfirmSelectOptions;
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties, Event};
use tokio::sync::{watch, Mutex};
use tokio_util::sync::CancellationToken;

use super::config::{describe, RabbitConfig};
use crate::backoff::Backoff;
use crate::broker::BrokerError;

/// Longest pause between two rounds over the host list, jitter included.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Relative jitter of reconnect pauses: ±50%, so that many sidecars do not
/// reconnect in lockstep.
const RECONNECT_JITTER: f64 = 0.5;
/// Bound on one TCP + AMQP handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the supervisor double-checks the connection state, in case an
/// error event was missed.
const STATUS_POLL: Duration = Duration::from_millis(500);
/// Largest AMQP frame we offer when the connection string names none
/// (`?frame_max=`). lapin keeps a receive and a send buffer of 32 frames per
/// connection, so RabbitMQ's 128 KiB default costs 8 MiB of resident memory
/// per connection (16 MiB for our publish + consume pair, measured with
/// `/proc/<pid>/smaps`); 16 KiB frames cost 1 MiB. A larger message is split
/// into more frames, which the broker reassembles.
const DEFAULT_FRAME_MAX: u32 = 16 * 1024;

/// A connection that is up, with what depends on it.
pub struct Live {
    /// The AMQP connection.
    pub conn: Connection,
    /// Increases with every new connection; consumers compare it.
    pub generation: u64,
    /// The shared publish channel (confirm mode), opened on first use and
    /// re-opened when the broker closes it.
    publish: Mutex<Option<Channel>>,
    /// Exchanges declared on this connection (declaring once per topic saves
    /// a round trip per publish).
    pub declared: std::sync::Mutex<HashSet<String>>,
}

impl Live {
    /// The confirm-mode publish channel, opening a new one if needed.
    pub async fn publish_channel(&self) -> Result<Channel, lapin::Error> {
        let mut slot = self.publish.lock().await;
        if let Some(ch) = slot.as_ref() {
            if ch.status().connected() {
                return Ok(ch.clone());
            }
        }
        let ch = self.conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        *slot = Some(ch.clone());
        Ok(ch)
    }
}

/// A supervised connection (see the module docs).
pub struct Link {
    state: watch::Receiver<Option<Arc<Live>>>,
    closed: CancellationToken,
    supervisor: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Link {
    /// Starts the supervisor. `role` names the connection (`publish`,
    /// `consume`) in logs and in the broker's connection list.
    pub fn start(cfg: Arc<RabbitConfig>, role: &'static str, closed: CancellationToken) -> Self {
        let (tx, rx) = watch::channel(None);
        let supervisor = tokio::spawn(supervise(cfg, role, tx, closed.clone()));
        Self {
            state: rx,
            closed,
            supervisor: std::sync::Mutex::new(Some(supervisor)),
        }
    }

    /// After the close token was cancelled: waits up to `wait` for the
    /// supervisor to close the connection.
    pub async fn join(&self, wait: Duration) {
        let task = self
            .supervisor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            if tokio::time::timeout(wait, task).await.is_err() {
                tracing::warn!("RabbitMQ connection did not close in time.");
            }
        }
    }

    /// The live connection, if any, right now.
    pub fn current(&self) -> Option<Arc<Live>> {
        self.state.borrow().clone()
    }

    /// Waits up to `wait` for a live connection.
    pub async fn wait_live(&self, wait: Duration) -> Result<Arc<Live>, BrokerError> {
        let mut rx = self.state.clone();
        let res = tokio::time::timeout(wait, async {
            tokio::select! {
                _ = self.closed.cancelled() => None,
                r = rx.wait_for(|s| s.is_some()) => r.ok().and_then(|s| s.clone()),
            }
        })
        .await;
        match res {
            Ok(Some(live)) => Ok(live),
            Ok(None) if self.closed.is_cancelled() => Err(BrokerError::Closed),
            _ => Err(BrokerError::Unavailable("not connected to RabbitMQ".into())),
        }
    }

    /// Waits until the connection of `generation` has been replaced or lost.
    pub async fn wait_change(&self, generation: u64) {
        let mut rx = self.state.clone();
        let _ = rx
            .wait_for(|s| s.as_ref().map(|l| l.generation) != Some(generation))
            .await;
    }
}

async fn supervise(
    cfg: Arc<RabbitConfig>,
    role: &'static str,
    tx: watch::Sender<Option<Arc<Live>>>,
    closed: CancellationToken,
) {
    let mut generation = 0u64;
    let mut failed_rounds = 0u32;
    let mut next_host = 0usize;
    loop {
        if closed.is_cancelled() {
            return;
        }
        let uri = &cfg.uris[next_host % cfg.uris.len()];
        next_host += 1;
        match tokio::time::timeout(CONNECT_TIMEOUT, connect(&cfg, uri, role)).await {
            Ok(Ok(conn)) => {
                failed_rounds = 0;
                generation += 1;
                let events = conn.events_listener();
                let live = Arc::new(Live {
                    conn,
                    generation,
                    publish: Mutex::new(None),
                    declared: std::sync::Mutex::new(HashSet::new()),
                });
                tracing::info!(role, broker = %describe(uri), generation, "Connected to RabbitMQ.");
                tx.send_replace(Some(live.clone()));
                let lost = wait_lost(&live.conn, events, &closed).await;
                tx.send_replace(None);
                if closed.is_cancelled() {
                    let _ = live.conn.close(200, "sidebus closing".into()).await;
                    return;
                }
                tracing::warn!(role, broker = %describe(uri), reason = %lost, "RabbitMQ connection lost; reconnecting.");
                // Retry the same host first: a closed connection is usually
                // a restart or an operator action, not a dead node.
                next_host -= 1;
            }
            Ok(Err(err)) => {
                tracing::warn!(role, broker = %describe(uri), error = %err, "RabbitMQ connection failed.");
            }
            Err(_) => {
                tracing::warn!(role, broker = %describe(uri), "RabbitMQ connection timed out.");
            }
        }
        if next_host.is_multiple_of(cfg.uris.len()) || failed_rounds == 0 {
            let delay = backoff(cfg.reconnect_wait, failed_rounds);
            failed_rounds = failed_rounds.saturating_add(1);
            tokio::select! {
                _ = closed.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// Reconnect pauses for `reconnectWaitSeconds` = `base`: `base` doubling per
/// failed round, ±50%, at most 30 s.
pub fn reconnect_backoff(base: Duration) -> Backoff {
    Backoff::exponential(base, MAX_BACKOFF).with_jitter(RECONNECT_JITTER)
}

/// The pause before reconnect round `round`: [`reconnect_backoff`] from
/// round 1 on; round 0 (right after a lost connection) waits only a tenth
/// of the base.
pub fn backoff(base: Duration, round: u32) -> Duration {
    match round.checked_sub(1) {
        Some(n) => reconnect_backoff(base).delay(n),
        None => reconnect_backoff(base / 10).delay(0),
    }
}

async fn connect(
    cfg: &RabbitConfig,
    uri: &AMQPUri,
    role: &str,
) -> Result<Connection, lapin::Error> {
    let mut uri = uri.clone();
    if uri.query.frame_max.is_none() {
        uri.query.frame_max = Some(DEFAULT_FRAME_MAX);
    }
    if uri.query.heartbeat.is_none() {
        uri.query.heartbeat = Some(cfg.heartbeat.as_secs().clamp(1, u16::MAX as u64) as u16);
    }
    let name = match &cfg.client_name {
        Some(n) => format!("{n} ({role})"),
        None => format!("sidebus ({role})"),
    };
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let tls = OwnedTLSConfig {
        identity: match (&cfg.tls.client_cert, &cfg.tls.client_key) {
            (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
                pem: cert.clone().into_bytes(),
                key: key.expose().as_bytes().to_vec(),
            }),
            _ => None,
        },
        cert_chain: cfg.tls.ca_cert.clone(),
    };
    let runtime = lapin::runtime::default_runtime()?;
    Connection::connect_uri_with_config(uri, props, tls, runtime).await
}

async fn wait_lost(
    conn: &Connection,
    events: impl futures_util::Stream<Item = Event> + Send,
    closed: &CancellationToken,
) -> String {
    let mut events = std::pin::pin!(events);
    let mut poll = tokio::time::interval(STATUS_POLL);
    loop {
        tokio::select! {
            _ = closed.cancelled() => return "closing".into(),
            ev = events.next() => match ev {
                Some(Event::Error(err)) => return err.to_string(),
                Some(Event::ConnectionBlocked(reason)) => {
                    tracing::warn!(reason = %reason, "RabbitMQ blocked the connection.");
                }
                Some(_) => {}
                None => return "event stream ended".into(),
            },
            _ = poll.tick() => {
                if !conn.status().connected() {
                    return "connection no longer connected".into();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let base = Duration::from_secs(3);
        for _ in 0..50 {
            let first = backoff(base, 0);
            assert!(first >= Duration::from_millis(150) && first <= Duration::from_millis(450));
            let third = backoff(base, 3);
            assert!(third >= Duration::from_secs(6) && third <= Duration::from_secs(18));
            let late = backoff(base, 30);
            assert!(late >= MAX_BACKOFF / 2 && late <= MAX_BACKOFF);
        }
    }
}
