//! The generic durable append log: named topics of partitions, one writer
//! thread that group-commits appends (many concurrent appends share one
//! fdatasync per partition), and paths for consumer cursors. It knows nothing
//! about pub/sub, so the publish outbox can reuse it as is.
//!
//! Folder layout: `LOCK`, `topics/<topic>/<partition>/<base>.seg`,
//! `groups/<topic>/<group>/<partition>.cursor` (names percent-encoded).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::error::EmbeddedError;
use super::lock::DirLock;
use super::names;
use super::partition::Partition;
use super::record::{self, NewRecord};
use super::segment;

/// Appends waiting for the writer before `append` callers wait themselves.
const QUEUE_CAPACITY: usize = 8192;
/// Most records one group commit takes.
const MAX_BATCH_RECORDS: usize = 4096;
/// Most payload bytes one group commit takes.
const MAX_BATCH_BYTES: usize = 16 << 20;

/// How a log is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// Partitions of a topic created by this log (existing topics keep theirs).
    pub partitions: u32,
    /// A segment is sealed once appending would take it past this size.
    pub segment_bytes: u64,
    /// Largest encoded record accepted.
    pub max_record_bytes: usize,
}

/// Counters for measuring group commit.
#[derive(Debug, Default)]
pub struct LogStats {
    /// Records made durable.
    pub appends: AtomicU64,
    /// fdatasync calls on segments.
    pub syncs: AtomicU64,
}

/// A topic: its partitions, fixed at creation.
pub struct Topic {
    /// The topic name.
    pub name: String,
    /// Its partitions, by index.
    pub partitions: Vec<Arc<Partition>>,
}

struct AppendReq {
    part: Arc<Partition>,
    rec: NewRecord,
    done: oneshot::Sender<Result<u64, EmbeddedError>>,
}

/// A durable, partitioned append log in one folder, owned by one process.
pub struct Log {
    dir: PathBuf,
    opts: LogOptions,
    topics: Mutex<HashMap<String, Arc<Topic>>>,
    tx: Mutex<Option<mpsc::Sender<AppendReq>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    lock: Mutex<Option<DirLock>>,
    stats: Arc<LogStats>,
}

impl Log {
    /// Locks `dir` and opens every topic in it, cutting torn tails. Blocking.
    pub fn open(dir: &Path, opts: LogOptions) -> Result<Self, EmbeddedError> {
        let lock = DirLock::acquire(dir)?;
        let topics_dir = dir.join("topics");
        segment::create_dir_durable(&topics_dir)?;
        let mut topics = HashMap::new();
        let entries = std::fs::read_dir(&topics_dir)
            .map_err(|e| EmbeddedError::io("list", &topics_dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| EmbeddedError::io("list", &topics_dir, e))?;
            let Some(name) = names::read_dir_name(&entry.path())? else {
                continue;
            };
            let topic = open_topic(&entry.path(), &name, None)?;
            topics.insert(name, Arc::new(topic));
        }
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let stats = Arc::new(LogStats::default());
        let writer = {
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("sidebus-embedded-writer".into())
                .spawn(move || write_loop(rx, opts.segment_bytes, &stats))
                .map_err(|e| EmbeddedError::io("start writer for", dir, e))?
        };
        tracing::info!(dir = %dir.display(), topics = topics.len(), "Opened the embedded log.");
        Ok(Self {
            dir: dir.to_path_buf(),
            opts,
            topics: Mutex::new(topics),
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            lock: Mutex::new(Some(lock)),
            stats,
        })
    }

    /// The data folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Group-commit counters.
    pub fn stats(&self) -> &LogStats {
        &self.stats
    }

    /// True until [`close`](Self::close).
    pub fn is_open(&self) -> bool {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// The topic, created with the configured partition count if new.
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>, EmbeddedError> {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = topics.get(name) {
            return Ok(t.clone());
        }
        if !self.is_open() {
            return Err(EmbeddedError::Closed);
        }
        // Creating a topic is a few mkdirs and empty files, once per topic;
        // holding the map lock makes concurrent first publishes agree.
        let dir = self.dir.join("topics").join(names::encode(name));
        names::write_long_name(&dir, name)?;
        let topic = Arc::new(open_topic(&dir, name, Some(self.opts.partitions))?);
        topics.insert(name.to_string(), topic.clone());
        Ok(topic)
    }

    /// Appends `rec` to partition `partition` of `topic` and returns its
    /// offset once it is durable on disk.
    pub async fn append(
        &self,
        topic: &Topic,
        partition: usize,
        rec: NewRecord,
    ) -> Result<u64, EmbeddedError> {
        let size = record::encoded_len(&rec);
        if size > self.opts.max_record_bytes {
            return Err(EmbeddedError::TooLarge {
                size,
                limit: self.opts.max_record_bytes,
            });
        }
        let part =
            topic
                .partitions
                .get(partition)
                .cloned()
                .ok_or_else(|| EmbeddedError::Corrupt {
                    path: self.dir.clone(),
                    reason: format!("topic {} has no partition {partition}", topic.name),
                })?;
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(EmbeddedError::Closed)?;
        let (done, rx) = oneshot::channel();
        tx.send(AppendReq { part, rec, done })
            .await
            .map_err(|_| EmbeddedError::Closed)?;
        rx.await.map_err(|_| EmbeddedError::Closed)?
    }

    /// The file holding a group's committed cursor for one partition.
    pub fn cursor_path(&self, topic: &str, group: &str, partition: usize) -> PathBuf {
        self.dir
            .join("groups")
            .join(names::encode(topic))
            .join(names::encode(group))
            .join(format!("{partition}.cursor"))
    }

    /// Deletes sealed segments past the age or size bound, in every topic.
    pub fn enforce_retention(
        &self,
        now_ms: i64,
        max_age_ms: Option<i64>,
        max_bytes: Option<u64>,
    ) -> usize {
        let topics: Vec<_> = self
            .topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| p.enforce_retention(now_ms, max_age_ms, max_bytes))
            .sum()
    }

    /// Stops accepting appends, lets the writer finish what it holds and
    /// releases the folder lock. Blocking; idempotent.
    pub fn close(&self) {
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = writer {
            if w.join().is_err() {
                tracing::error!(dir = %self.dir.display(), "The embedded log writer panicked.");
            }
        }
        if let Some(lock) = self.lock.lock().unwrap_or_else(|e| e.into_inner()).take() {
            tracing::info!(lock = %lock.path().display(), "Closed the embedded log.");
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.close();
    }
}

fn open_topic(dir: &Path, name: &str, create: Option<u32>) -> Result<Topic, EmbeddedError> {
    let mut count = 0usize;
    if dir.exists() {
        let entries = std::fs::read_dir(dir).map_err(|e| EmbeddedError::io("list", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| EmbeddedError::io("list", dir, e))?;
            if let Some(i) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<usize>().ok())
            {
                count = count.max(i + 1);
            }
        }
    }
    if count == 0 {
        count = create.unwrap_or(1).max(1) as usize;
    }
    let partitions = (0..count)
        .map(|i| Partition::open(&dir.join(i.to_string())).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Topic {
        name: name.to_string(),
        partitions,
    })
}

/// The writer thread: takes whatever is queued (up to a bound), appends it
/// per partition with one sync each, then answers every caller.
fn write_loop(mut rx: mpsc::Receiver<AppendReq>, segment_bytes: u64, stats: &LogStats) {
    while let Some(first) = rx.blocking_recv() {
        let mut bytes = first.rec.data.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_RECORDS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(req) => {
                    bytes += req.rec.data.len();
                    batch.push(req);
                }
                Err(_) => break,
            }
        }
        let mut groups: Vec<(Arc<Partition>, Vec<AppendReq>)> = Vec::new();
        for req in batch {
            match groups.iter_mut().find(|(p, _)| Arc::ptr_eq(p, &req.part)) {
                Some((_, reqs)) => reqs.push(req),
                None => groups.push((req.part.clone(), vec![req])),
            }
        }
        let now = chrono::Utc::now().timestamp_millis();
        let staged: Vec<_> = groups
            .iter()
            .map(|(part, reqs)| {
                let recs: Vec<&NewRecord> = reqs.iter().map(|r| &r.rec).collect();
                part.write_batch(&recs, now, segment_bytes)
            })
            .collect();
        // fdatasync of different files proceeds in parallel on the device;
        // syncing partitions one after another would add their latencies.
        let results: Vec<_> = if staged.len() == 1 {
            staged
                .into_iter()
                .zip(&groups)
                .map(|(st, (part, _))| part.sync_batch(st))
                .collect()
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = staged
                    .into_iter()
                    .zip(&groups)
                    .map(|(st, (part, _))| scope.spawn(move || part.sync_batch(st)))
                    .collect();
                handles
                    .into_iter()
                    .zip(&groups)
                    .map(|(h, (part, reqs))| {
                        h.join().unwrap_or_else(|_| {
                            tracing::error!(partition = %part.dir().display(), "A sync thread panicked.");
                            reqs.iter()
                                .map(|_| Err(EmbeddedError::Failed { path: part.dir().to_path_buf() }))
                                .collect()
                        })
                    })
                    .collect()
            })
        };
        for ((_, reqs), results) in groups.into_iter().zip(results) {
            stats.syncs.fetch_add(1, Ordering::Relaxed);
            let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
            stats.appends.fetch_add(ok, Ordering::Relaxed);
            for (req, res) in reqs.into_iter().zip(results) {
                // The caller may have given up waiting; the record stays.
                let _ = req.done.send(res);
            }
        }
    }
}
