//! One group consumer: a dedicated thread that polls librdkafka, routes each
//! record to its partition's lane (pausing a partition whose lane is full
//! instead of blocking the loop), commits finished prefixes, obeys
//! subscribe/unsubscribe commands, and restarts the consumer when the
//! watchdog sees lag without progress.
//!
//! The fetch loop runs on its own thread so rebalance hooks may wait for
//! in-flight events without blocking the async runtime.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

use super::client_config;
use super::context::{settle_and_release, Consumer_, GroupContext};
use super::state::{PartKey, Shared};
use super::watchdog;
use crate::broker::{BrokerError, Handler};

/// How often finished offsets are committed while running.
const COMMIT_EVERY: Duration = Duration::from_millis(500);
/// Poll wait when nothing is parked in a backlog.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// Poll wait while a paused partition waits for room in its lane.
const BUSY_POLL: Duration = Duration::from_millis(5);

/// Requests from subscriptions to their group consumer.
pub enum Command {
    /// Start consuming `topic` with `handler`; `joined` fires after the next
    /// completed rebalance.
    Add {
        /// Topic to add.
        topic: String,
        /// Its handler.
        handler: Arc<dyn Handler>,
        /// Fires once the group has rebalanced with the topic.
        joined: oneshot::Sender<()>,
    },
    /// Stop consuming `topic`; `done` fires once its partitions are settled.
    Remove {
        /// Topic to remove.
        topic: String,
        /// Fires when done.
        done: oneshot::Sender<()>,
    },
}

/// Why the inner loop returned.
enum Exit {
    /// The watchdog saw a stall: build a fresh consumer.
    Restart,
    /// No topics left or the component closed.
    Stop(Option<oneshot::Sender<()>>),
}

/// Starts a group consumer thread; it ends when its last topic is removed
/// or the command sender is dropped.
pub fn spawn(
    shared: Arc<Shared>,
    group: String,
    instance: usize,
) -> Result<mpsc::Sender<Command>, BrokerError> {
    // Commands come only from subscribe/stop calls; a small bound suffices.
    let (tx, rx) = mpsc::channel(64);
    std::thread::Builder::new()
        .name(format!("kafka-{group}"))
        .spawn(move || run(shared, group, instance, rx))
        .map_err(|e| BrokerError::Unavailable(format!("consumer thread: {e}")))?;
    Ok(tx)
}

fn create(shared: &Arc<Shared>, group: &str, instance: usize) -> Result<Consumer_, KafkaError> {
    let mut cfg = client_config::consumer(&shared.cfg, group);
    if let (Some(id), true) = (&shared.cfg.group_instance_id, instance > 0) {
        // Two consumers of one group in one sidecar need distinct static ids.
        cfg.set("group.instance.id", format!("{id}-{instance}"));
    }
    cfg.create_with_context(GroupContext {
        shared: shared.clone(),
    })
}

fn run(shared: Arc<Shared>, group: String, instance: usize, mut cmds: mpsc::Receiver<Command>) {
    let mut restarts = 0u32;
    loop {
        let consumer = match create(&shared, &group, instance) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(group, error = %e, "Cannot create Kafka consumer; retrying.");
                std::thread::sleep(Duration::from_secs(1));
                if serve_without_consumer(&shared, &mut cmds) {
                    shared.cancel.cancel();
                    return;
                }
                continue;
            }
        };
        let topics: Vec<String> = shared.lock().routes.keys().cloned().collect();
        if !topics.is_empty() {
            subscribe(&consumer, &topics);
        }
        let exit = drive(&consumer, &shared, &mut cmds);
        let keys: Vec<PartKey> = shared.lock().parts.keys().cloned().collect();
        settle_and_release(&shared, &consumer, &keys, true);
        // Dropping the consumer closes it: leaves the group (unless static).
        drop(consumer);
        match exit {
            Exit::Restart => {
                restarts += 1;
                shared.restarts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(group, restarts, "Kafka consumer restarted by the watchdog.");
            }
            Exit::Stop(done) => {
                shared.cancel.cancel();
                if let Some(done) = done {
                    let _ = done.send(());
                }
                tracing::info!(group, "Kafka consumer stopped.");
                return;
            }
        }
    }
}

/// Answers commands while no consumer exists, so subscriptions can still
/// be stopped. Returns true when the member should end.
fn serve_without_consumer(shared: &Shared, cmds: &mut mpsc::Receiver<Command>) -> bool {
    loop {
        match cmds.try_recv() {
            Ok(Command::Add {
                topic,
                handler,
                joined,
            }) => {
                let mut st = shared.lock();
                st.routes.insert(topic, handler);
                st.waiters.push(joined);
            }
            Ok(Command::Remove { topic, done }) => {
                let empty = {
                    let mut st = shared.lock();
                    st.routes.remove(&topic);
                    st.routes.is_empty()
                };
                let _ = done.send(());
                if empty {
                    return true;
                }
            }
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => return true,
        }
    }
}

fn subscribe(consumer: &Consumer_, topics: &[String]) {
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    if let Err(e) = consumer.subscribe(&refs) {
        tracing::error!(error = %e, "Kafka subscribe failed.");
    }
}

fn drive(consumer: &Consumer_, shared: &Arc<Shared>, cmds: &mut mpsc::Receiver<Command>) -> Exit {
    let mut last_commit = Instant::now();
    let mut last_watch = Instant::now();
    let watch_every =
        (shared.cfg.stall_timeout / 4).clamp(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        loop {
            match cmds.try_recv() {
                Ok(cmd) => {
                    if let Some(exit) = command(consumer, shared, cmd) {
                        return exit;
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Exit::Stop(None),
            }
        }
        let parked = feed_backlogs(consumer, shared);
        match consumer.poll(if parked { BUSY_POLL } else { IDLE_POLL }) {
            Some(Ok(m)) => dispatch(consumer, shared, m.detach()),
            Some(Err(e)) => tracing::warn!(error = %e, "Kafka fetch error."),
            None => {}
        }
        if last_commit.elapsed() >= COMMIT_EVERY {
            last_commit = Instant::now();
            commit_progress(consumer, shared);
        }
        if !shared.cfg.stall_timeout.is_zero() && last_watch.elapsed() >= watch_every {
            last_watch = Instant::now();
            if watchdog::stalled(consumer, shared) {
                return Exit::Restart;
            }
        }
    }
}

fn command(consumer: &Consumer_, shared: &Arc<Shared>, cmd: Command) -> Option<Exit> {
    match cmd {
        Command::Add {
            topic,
            handler,
            joined,
        } => {
            let topics = {
                let mut st = shared.lock();
                st.routes.insert(topic, handler);
                st.waiters.push(joined);
                st.routes.keys().cloned().collect::<Vec<_>>()
            };
            subscribe(consumer, &topics);
            None
        }
        Command::Remove { topic, done } => {
            let (keys, remaining) = {
                let mut st = shared.lock();
                st.routes.remove(&topic);
                let keys: Vec<PartKey> =
                    st.parts.keys().filter(|k| k.0 == topic).cloned().collect();
                (keys, st.routes.keys().cloned().collect::<Vec<_>>())
            };
            if remaining.is_empty() {
                return Some(Exit::Stop(Some(done)));
            }
            settle_and_release(shared, consumer, &keys, true);
            let mut tpl = TopicPartitionList::new();
            for (t, p) in &keys {
                tpl.add_partition(t, *p);
            }
            // Fetching of the removed topic stops now, not at the rebalance.
            let _ = consumer.pause(&tpl);
            subscribe(consumer, &remaining);
            let _ = done.send(());
            None
        }
    }
}

/// Hands a fetched record to its lane; parks it and pauses the partition
/// when the lane is full.
fn dispatch(consumer: &Consumer_, shared: &Shared, record: OwnedMessage) {
    let key = (record.topic().to_string(), record.partition());
    let mut st = shared.lock();
    let Some(part) = st.parts.get_mut(&key) else {
        // Revoked or removed meanwhile: not committed, the owner reads it.
        return;
    };
    part.offsets.fetched(record.offset());
    part.progressed = true;
    let record = if part.backlog.is_empty() {
        match part.lane.try_send(record) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(record)) => record,
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    } else {
        record
    };
    part.backlog.push_back(record);
    // A short burst is absorbed by the backlog; pausing only when it is
    // full too avoids pause/resume churn (a resume re-fetches what the pause
    // discarded from librdkafka's prefetch queue).
    if !part.paused && part.backlog.is_full(shared.cfg.partition_buffer) {
        part.paused = true;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&key.0, key.1);
        if let Err(e) = consumer.pause(&tpl) {
            tracing::warn!(topic = %key.0, partition = key.1, error = %e, "Pause failed.");
        }
        tracing::debug!(topic = %key.0, partition = key.1, "Partition paused: lane and backlog full.");
    }
}

/// Moves backlogged records into lanes with room; resumes drained partitions.
/// Returns whether anything is still parked.
fn feed_backlogs(consumer: &Consumer_, shared: &Shared) -> bool {
    let mut st = shared.lock();
    let mut parked = false;
    let mut resume = TopicPartitionList::new();
    for (key, part) in st.parts.iter_mut() {
        if part.backlog.is_empty() && !part.paused {
            continue;
        }
        while let Some(record) = part.backlog.pop_front() {
            match part.lane.try_send(record) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(record)) => {
                    part.backlog.push_front(record);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => part.backlog.clear(),
            }
        }
        if part.backlog.is_empty() {
            if std::mem::take(&mut part.paused) {
                resume.add_partition(&key.0, key.1);
            }
        } else {
            parked = true;
        }
    }
    drop(st);
    if resume.count() > 0 {
        if let Err(e) = consumer.resume(&resume) {
            tracing::warn!(error = %e, "Resume failed.");
        }
    }
    parked
}

/// Commits every partition's finished prefix that moved (asynchronously).
fn commit_progress(consumer: &Consumer_, shared: &Shared) {
    let mut tpl = TopicPartitionList::new();
    {
        let mut st = shared.lock();
        for (key, part) in st.parts.iter_mut() {
            if let Some(point) = part.offsets.take_commit() {
                let _ = tpl.add_partition_offset(&key.0, key.1, Offset::Offset(point));
            }
        }
    }
    if tpl.count() > 0 {
        if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
            tracing::warn!(error = %e, "Offset commit failed; retried with the next one.");
        }
    }
}
