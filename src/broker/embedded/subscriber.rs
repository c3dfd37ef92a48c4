//! Consuming: one task per partition of a member, active while the member
//! owns the partition. It reads durable records, hands them to the handler
//! (whose `submit` applies backpressure), and commits the group's cursor up
//! to the lowest unfinished offset. A `Retry` outcome redelivers the event
//! after a backoff and, until it succeeds, nothing newer is fetched from that
//! partition, so one key's events are never overtaken by a fetch.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use tokio::sync::{oneshot, watch, OwnedMutexGuard};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::InitialOffset;
use super::cursor;
use super::group::{assigned, Group, Slot};
use super::log::Log;
use super::partition::Partition;
use super::reader::{offset_for_time, PartitionReader};
use super::record::StoredRecord;
use crate::backoff::Backoff;
use crate::broker::{Handler, Outcome, ReceivedMessage};

/// Most events of one partition between the committed cursor and the
/// newest fetched one (queued, in flight, retrying or done-but-not-contiguous).
const MAX_PENDING: usize = 1024;
/// Most events one read takes.
const FETCH_RECORDS: usize = 256;
/// Most payload bytes one read takes.
const FETCH_BYTES: usize = 4 << 20;
/// How often an advancing cursor is written (each write is an fsync).
const COMMIT_INTERVAL: Duration = Duration::from_millis(200);
/// How long a stopping partition waits for in-flight outcomes.
const SETTLE_GRACE: Duration = Duration::from_secs(2);
/// Pause before a retried event is delivered again: 100 ms doubling per
/// redelivery, at most 5 s.
const RETRY_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5)).with_jitter(0.0);
/// Pause after a failed read or cursor write before trying again.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Everything one partition task needs.
pub struct PartitionTask {
    /// The log.
    pub log: Arc<Log>,
    /// The partition.
    pub part: Arc<Partition>,
    /// Topic name.
    pub topic: String,
    /// Group name.
    pub group_name: String,
    /// The group.
    pub group: Arc<Group>,
    /// Partition index.
    pub index: usize,
    /// This member.
    pub member: u64,
    /// Where a new group starts.
    pub initial: InitialOffset,
    /// The delivery layer.
    pub handler: Arc<dyn Handler>,
    /// Stops the subscription.
    pub cancel: CancellationToken,
}

enum State {
    Queued,
    InFlight(ReceivedMessage),
    Retrying,
    Done,
    Abandoned,
}

type AckFuture =
    futures_util::future::BoxFuture<'static, (u64, Result<Outcome, oneshot::error::RecvError>)>;

impl PartitionTask {
    /// Runs until cancelled: waits for ownership, consumes, hands over.
    pub async fn run(self) {
        let mut members = self.group.watch();
        let slot = self.group.slots[self.index].clone();
        loop {
            while !assigned(&members.borrow_and_update(), self.index, self.member) {
                tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    changed = members.changed() => if changed.is_err() { return },
                }
            }
            let guard = tokio::select! {
                _ = self.cancel.cancelled() => return,
                g = slot.clone().lock_owned() => g,
            };
            self.consume(guard, &mut members).await;
            if self.cancel.is_cancelled() {
                return;
            }
        }
    }

    /// The group's next offset: committed, or resolved and stored for a new group.
    async fn start_offset(&self, slot: &mut Slot) -> Option<u64> {
        if let Some(next) = slot.next {
            return Some(next);
        }
        let path = self
            .log
            .cursor_path(&self.topic, &self.group_name, self.index);
        let (part, initial) = (self.part.clone(), self.initial);
        let res = tokio::task::spawn_blocking(move || {
            let snap = part.snapshot();
            if let Some(next) = cursor::load(&path)? {
                if next > snap.end {
                    // Only durable offsets are ever committed, so this means
                    // the log lost data (a damaged disk): resume at its end
                    // rather than silently skip the next `next - end` events.
                    tracing::warn!(cursor = %path.display(), committed = next, end = snap.end, "Committed cursor is past the end of the log; resuming at the end.");
                    return Ok(snap.end);
                }
                return Ok(next);
            }
            let next = match initial {
                InitialOffset::Oldest => snap.start,
                InitialOffset::Newest => snap.end,
                InitialOffset::Time(ts) => offset_for_time(&part, ts)?,
            };
            // Stored at once so `newest` means "from when the group began",
            // not "from whenever it next restarts".
            cursor::store(&path, next)?;
            Ok::<_, super::error::EmbeddedError>(next)
        })
        .await;
        match res {
            Ok(Ok(next)) => {
                slot.next = Some(next);
                Some(next)
            }
            Ok(Err(e)) => {
                tracing::error!(topic = %self.topic, group = %self.group_name, partition = self.index, error = %e, "Could not load the group's cursor.");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "Cursor task failed.");
                None
            }
        }
    }

    async fn consume(
        &self,
        mut slot: OwnedMutexGuard<Slot>,
        members: &mut watch::Receiver<Vec<u64>>,
    ) {
        let Some(start) = self.start_offset(&mut slot).await else {
            tokio::select! {
                _ = self.cancel.cancelled() => {}
                _ = tokio::time::sleep(ERROR_PAUSE) => {}
            }
            return;
        };
        tracing::debug!(topic = %self.topic, group = %self.group_name, partition = self.index, from = start, "Consuming partition.");
        let mut c = Consumer {
            reader: Some(PartitionReader::new(self.part.clone(), start)),
            pending: BTreeMap::new(),
            queue: VecDeque::new(),
            retries: BTreeMap::new(),
            acks: FuturesUnordered::new(),
            persisted: start,
            last_persist: Instant::now(),
        };
        let mut end = self.part.watch_end();
        loop {
            if self.cancel.is_cancelled() || !assigned(&members.borrow(), self.index, self.member) {
                break;
            }
            while let Some(Some((off, res))) = c.acks.next().now_or_never() {
                c.settle(off, res);
            }
            self.maybe_persist(&mut c, &mut slot, false).await;
            let now = Instant::now();
            let due: Vec<u64> = c
                .retries
                .iter()
                .filter(|(_, (d, _))| *d <= now)
                .map(|(o, _)| *o)
                .collect();
            // Oldest first at the front of the queue: push in reverse.
            for off in due.into_iter().rev() {
                if let Some((_, msg)) = c.retries.remove(&off) {
                    c.pending.insert(off, State::Queued);
                    c.queue.push_front((off, msg));
                }
            }
            if let Some((off, msg)) = c.queue.pop_front() {
                // A submit waiting for room is abandoned only when this
                // member stops or loses the partition, not on every change
                // of the member list.
                let (index, member) = (self.index, self.member);
                let lost = members.wait_for(|m| !assigned(m, index, member));
                let ack = tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => { c.queue.push_front((off, msg)); break; }
                    _ = lost => { c.queue.push_front((off, msg)); continue; }
                    ack = self.handler.submit(msg.clone()) => ack,
                };
                c.pending.insert(off, State::InFlight(msg));
                c.acks.push(ack.map(move |r| (off, r)).boxed());
                continue;
            }
            let durable = *end.borrow_and_update();
            let can_fetch = c.retries.is_empty() && c.pending.len() < MAX_PENDING;
            if can_fetch && c.position() < durable {
                if !self.fetch(&mut c).await {
                    tokio::select! {
                        _ = self.cancel.cancelled() => break,
                        _ = tokio::time::sleep(ERROR_PAUSE) => {}
                    }
                }
                continue;
            }
            let next_retry = c.retries.values().map(|(due, _)| *due).min();
            let persist_due =
                (c.committed() > c.persisted).then(|| c.last_persist + COMMIT_INTERVAL);
            let wake = [next_retry, persist_due].into_iter().flatten().min();
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                _ = members.changed() => {}
                Some((off, res)) = c.acks.next(), if !c.acks.is_empty() => c.settle(off, res),
                _ = end.changed(), if can_fetch => {}
                _ = sleep_until_opt(wake) => {}
            }
        }
        self.finish(&mut c, &mut slot).await;
    }

    /// Reads the next batch into the queue; false after a read error.
    async fn fetch(&self, c: &mut Consumer) -> bool {
        let before = c.position();
        let Some(mut reader) = c.reader.take() else {
            return false;
        };
        let room = (MAX_PENDING - c.pending.len()).min(FETCH_RECORDS);
        let res = tokio::task::spawn_blocking(move || {
            let batch = reader.read_batch(room, FETCH_BYTES);
            (reader, batch)
        })
        .await;
        let (reader, batch) = match res {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "Partition read task failed.");
                c.reader = Some(PartitionReader::new(self.part.clone(), c.committed()));
                return false;
            }
        };
        c.reader = Some(reader);
        match batch {
            Ok(recs) => {
                // Nothing read and no progress although durable records are
                // waiting would otherwise spin: report it as a failed read.
                let progressed = !recs.is_empty() || c.position() != before;
                for rec in recs {
                    c.pending.insert(rec.offset, State::Queued);
                    c.queue.push_back((rec.offset, self.message(rec)));
                }
                progressed
            }
            Err(e) => {
                tracing::error!(topic = %self.topic, partition = self.index, error = %e, "Could not read the partition.");
                false
            }
        }
    }

    fn message(&self, rec: StoredRecord) -> ReceivedMessage {
        let mut metadata = rec.record.metadata;
        if let Some(k) = &rec.record.key {
            metadata.insert("__key".into(), k.clone());
        }
        metadata.insert("__partition".into(), self.index.to_string());
        metadata.insert("__offset".into(), rec.offset.to_string());
        if !rec.record.content_type.is_empty() {
            metadata
                .entry("content-type".into())
                .or_insert(rec.record.content_type);
        }
        ReceivedMessage {
            topic: self.topic.clone(),
            data: rec.record.data,
            metadata,
            key: rec.record.key,
            partition: i32::try_from(self.index).ok(),
            redeliveries: 0,
        }
    }

    /// Waits (bounded) for in-flight outcomes, then commits what is contiguous.
    async fn finish(&self, c: &mut Consumer, slot: &mut OwnedMutexGuard<Slot>) {
        let deadline = Instant::now() + SETTLE_GRACE;
        while !c.acks.is_empty() {
            match tokio::time::timeout_at(deadline, c.acks.next()).await {
                Ok(Some((off, res))) => c.settle(off, res),
                _ => break,
            }
        }
        self.maybe_persist(c, slot, true).await;
        tracing::debug!(topic = %self.topic, group = %self.group_name, partition = self.index, committed = c.persisted, "Released partition.");
    }

    async fn maybe_persist(&self, c: &mut Consumer, slot: &mut OwnedMutexGuard<Slot>, force: bool) {
        let committed = c.committed();
        slot.next = Some(committed);
        if committed <= c.persisted || (!force && c.last_persist.elapsed() < COMMIT_INTERVAL) {
            return;
        }
        let path = self
            .log
            .cursor_path(&self.topic, &self.group_name, self.index);
        c.last_persist = Instant::now();
        match tokio::task::spawn_blocking(move || cursor::store(&path, committed)).await {
            Ok(Ok(())) => c.persisted = committed,
            Ok(Err(e)) => tracing::error!(error = %e, "Could not commit the group's cursor."),
            Err(e) => tracing::error!(error = %e, "Cursor task failed."),
        }
    }
}

struct Consumer {
    reader: Option<PartitionReader>,
    pending: BTreeMap<u64, State>,
    queue: VecDeque<(u64, ReceivedMessage)>,
    retries: BTreeMap<u64, (Instant, ReceivedMessage)>,
    acks: FuturesUnordered<AckFuture>,
    persisted: u64,
    last_persist: Instant,
}

impl Consumer {
    fn position(&self) -> u64 {
        self.reader.as_ref().map_or(0, PartitionReader::position)
    }

    /// The lowest unfinished offset: everything below it is done.
    fn committed(&mut self) -> u64 {
        while let Some(entry) = self.pending.first_entry() {
            if matches!(entry.get(), State::Done) {
                entry.remove();
            } else {
                return *entry.key();
            }
        }
        self.position()
    }

    fn settle(&mut self, off: u64, res: Result<Outcome, oneshot::error::RecvError>) {
        let Some(state) = self.pending.get_mut(&off) else {
            return;
        };
        let msg = match std::mem::replace(state, State::Done) {
            State::InFlight(msg) => msg,
            other => {
                *state = other;
                return;
            }
        };
        match res {
            Ok(outcome) if outcome.is_ack() => {}
            Ok(_) => {
                let due = Instant::now() + RETRY_BACKOFF.delay(msg.redeliveries);
                let mut again = msg;
                again.redeliveries += 1;
                *state = State::Retrying;
                self.retries.insert(off, (due, again));
            }
            // The delivery layer shut down first: keep it uncommitted so the
            // next owner or the next start delivers it again.
            Err(_) => *state = State::Abandoned,
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
