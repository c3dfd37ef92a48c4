//! `pubsub.embedded`: the durable single-machine broker, and the default
//! component. Events live in an append-only, checksummed segment log under
//! the data folder; a publish returns only after its record is fdatasync'ed
//! (group commit lets concurrent publishes share one sync); consumer groups
//! keep a committed cursor per partition on disk.
//!
//! Map: [`log`] (topics, writer thread, group commit) → [`partition`] →
//! [`segment`] files of [`record`] frames; [`reader`] reads them back;
//! [`recovery`] tells a torn tail from damage in the middle;
//! [`cursor`] stores group positions; [`group`] splits partitions between
//! subscribers; [`publisher`] / [`subscriber`] connect it to the contract;
//! [`lock`] keeps the folder to one process; [`names`] turns topic and
//! group names into folder names; [`config`] is the metadata.

pub mod config;
pub mod cursor;
pub mod error;
pub mod group;
pub mod lock;
pub mod log;
pub mod names;
pub mod partition;
pub mod publisher;
pub mod reader;
pub mod record;
pub mod recovery;
pub mod segment;
pub mod subscriber;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::config::{parse_initial_offset, EmbeddedConfig};
use self::error::EmbeddedError;
use self::group::Groups;
use self::log::{Log, LogOptions};
use self::publisher::Publisher;
use self::subscriber::PartitionTask;
use super::factory::{BuildContext, Factory, Validation};
use super::{
    BrokerError, Feature, Handler, PubSub, PublishRequest, SubscribeRequest, Subscription,
};
use crate::config::metadata::{MetadataProblem, Parsed};
use crate::config::model::ComponentSpec;

/// How often retention looks for segments to delete.
const RETENTION_INTERVAL: Duration = Duration::from_secs(60);
/// How long `close` waits for subscriptions to commit before closing the log.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The embedded broker over one data folder.
pub struct Embedded {
    log: Arc<Log>,
    publisher: Publisher,
    groups: Arc<Groups>,
    config: EmbeddedConfig,
    closed: CancellationToken,
    tasks: TaskTracker,
}

impl Embedded {
    /// Opens (creating if needed) the log in `dir`: takes the folder lock,
    /// recovers every partition, starts the writer and retention.
    pub async fn open(dir: PathBuf, config: EmbeddedConfig) -> Result<Self, EmbeddedError> {
        let opts = LogOptions {
            partitions: config.partitions,
            segment_bytes: config.segment_bytes,
            max_record_bytes: config.max_message_bytes + 64 * 1024,
        };
        let log = tokio::task::spawn_blocking(move || Log::open(&dir, opts))
            .await
            .map_err(|e| EmbeddedError::io("open", PathBuf::new(), std::io::Error::other(e)))??;
        let log = Arc::new(log);
        let closed = CancellationToken::new();
        let tasks = TaskTracker::new();
        if config.retention.is_some() || config.retention_bytes.is_some() {
            tasks.spawn(retention_loop(log.clone(), config.clone(), closed.clone()));
        }
        Ok(Self {
            publisher: Publisher::new(log.clone()),
            log,
            groups: Arc::default(),
            config,
            closed,
            tasks,
        })
    }

    /// The underlying log (for the outbox and for measurements).
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// Applies retention as if the time were `now_ms`; returns segments deleted.
    pub fn enforce_retention_at(&self, now_ms: i64) -> usize {
        let age = self
            .config
            .retention
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.log
            .enforce_retention(now_ms, age, self.config.retention_bytes)
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        // Without an explicit `close`, still stop retention and the
        // subscriptions so the last `Arc<Log>` goes and the lock is released.
        self.closed.cancel();
    }
}

async fn retention_loop(log: Arc<Log>, config: EmbeddedConfig, closed: CancellationToken) {
    let age = config
        .retention
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    loop {
        tokio::select! {
            _ = closed.cancelled() => return,
            _ = tokio::time::sleep(RETENTION_INTERVAL) => {}
        }
        let log = log.clone();
        let now = chrono::Utc::now().timestamp_millis();
        let bytes = config.retention_bytes;
        if let Err(e) =
            tokio::task::spawn_blocking(move || log.enforce_retention(now, age, bytes)).await
        {
            tracing::error!(error = %e, "Retention task failed.");
        }
    }
}

#[async_trait]
impl PubSub for Embedded {
    fn features(&self) -> &[Feature] {
        &[]
    }

    async fn publish(&self, req: PublishRequest) -> Result<(), BrokerError> {
        if self.closed.is_cancelled() {
            return Err(BrokerError::Closed);
        }
        Ok(self.publisher.publish(req).await?)
    }

    async fn subscribe(
        &self,
        req: SubscribeRequest,
        handler: Arc<dyn Handler>,
    ) -> Result<Subscription, BrokerError> {
        if self.closed.is_cancelled() {
            return Err(BrokerError::Closed);
        }
        let initial = match req.metadata.get("initialOffset") {
            Some(v) => parse_initial_offset(v.trim()).ok_or_else(|| {
                BrokerError::Rejected(format!(
                    "initialOffset {v:?} is not oldest, newest or an RFC3339 time"
                ))
            })?,
            None => self.config.initial_offset,
        };
        let topic = self.log.topic(&req.topic)?;
        let (group, member) = self
            .groups
            .join(&req.topic, &req.group, topic.partitions.len());
        let cancel = self.closed.child_token();
        let mut parts = tokio::task::JoinSet::new();
        for (index, part) in topic.partitions.iter().enumerate() {
            let task = PartitionTask {
                log: self.log.clone(),
                part: part.clone(),
                topic: req.topic.clone(),
                group_name: req.group.clone(),
                group: group.clone(),
                index,
                member,
                initial,
                handler: handler.clone(),
                cancel: cancel.clone(),
            };
            parts.spawn(task.run());
        }
        let watch = cancel.clone();
        let task = self.tasks.spawn(async move {
            watch.cancelled().await;
            // Leave first so the others can queue for our partitions while
            // ours settle; the slot locks keep the handover exclusive.
            group.leave(member);
            while let Some(res) = parts.join_next().await {
                if let Err(e) = res {
                    tracing::error!(error = %e, "Partition task ended abnormally.");
                }
            }
        });
        tracing::info!(topic = %req.topic, group = %req.group, member, "Subscribed.");
        Ok(Subscription::new(cancel, task))
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        if self.closed.is_cancelled() || !self.log.is_open() {
            return Err(BrokerError::Closed);
        }
        Ok(())
    }

    async fn close(&self) -> Result<(), BrokerError> {
        self.closed.cancel();
        self.tasks.close();
        if tokio::time::timeout(CLOSE_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(dir = %self.log.dir().display(), "Subscriptions did not stop in time; closing the log anyway.");
        }
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.close())
            .await
            .map_err(|e| BrokerError::Unavailable(format!("closing the embedded log failed: {e}")))
    }
}

/// The folder name the publish outbox keeps its stores under, inside the
/// data folder: an embedded component of that name and no `dataDir` would
/// share it.
const OUTBOX_FOLDER: &str = "outbox";

/// The component's metadata, plus what depends on its name: without a
/// `dataDir` its folder is `<data dir>/<name>`, which must not be the
/// outbox's.
fn parse_spec(spec: &ComponentSpec) -> Result<Parsed<EmbeddedConfig>, Validation> {
    let parsed = EmbeddedConfig::parse(&spec.metadata);
    let clash = spec.name == OUTBOX_FOLDER
        && parsed
            .as_ref()
            .map_or(true, |p| p.config.data_dir.is_none());
    if !clash {
        return parsed;
    }
    let mut v = Validation::of(&parsed);
    v.errors.push(MetadataProblem::new(
        "dataDir",
        "",
        "a pubsub.embedded component named \"outbox\" needs its own dataDir: \
         <data dir>/outbox is where the publish outbox keeps its stores",
    ));
    Err(v)
}

/// Factory for `pubsub.embedded`.
pub struct EmbeddedFactory;

#[async_trait]
impl Factory for EmbeddedFactory {
    fn type_names(&self) -> &'static [&'static str] {
        &["pubsub.embedded"]
    }

    fn validate(&self, spec: &ComponentSpec) -> Validation {
        Validation::of(&parse_spec(spec))
    }

    async fn build(
        &self,
        spec: &ComponentSpec,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn PubSub>, BrokerError> {
        let config = parse_spec(spec)
            .map_err(|v| BrokerError::Rejected(v.describe_errors()))?
            .config;
        let dir = config
            .data_dir
            .clone()
            .unwrap_or_else(|| ctx.data_dir.join(&spec.name));
        let broker = Embedded::open(dir, config).await?;
        Ok(Arc::new(broker))
    }
}
