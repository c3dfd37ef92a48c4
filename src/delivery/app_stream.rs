//! The streaming app channel: a subscription whose app is a client stream
//! (`SubscribeTopicEventsAlpha1`). Each event goes out as the
//! `TopicEventRequest` a gRPC app would get; the client answers with
//! `event_processed{id, status}`, matched here by CloudEvent id. The gRPC
//! edge only moves messages between its tonic stream and this channel.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::app_grpc::{map_status, topic_event_request};
use super::channel::{AppChannel, AppEvent, AppResult, BulkAppRequest};
use crate::proto::{SubscribeTopicEventsRequestProcessedAlpha1, TopicEventRequest};

/// One client stream as an [`AppChannel`]. `T` is what the stream's outbound
/// queue carries; `wrap` turns an event into it, so the edge can put its own
/// messages (the initial response, a final status) on the same queue.
pub struct AppStream<T> {
    out: mpsc::Sender<T>,
    wrap: fn(TopicEventRequest) -> T,
    /// Events sent and not answered yet, by CloudEvent id. Bounded by the
    /// subscription's in-flight bound: one entry per delivery in progress.
    pending: Mutex<HashMap<String, oneshot::Sender<AppResult>>>,
    gone: CancellationToken,
}

impl<T: Send + 'static> AppStream<T> {
    /// A channel sending events on `out`, each made by `wrap`.
    pub fn new(out: mpsc::Sender<T>, wrap: fn(TopicEventRequest) -> T) -> Self {
        Self {
            out,
            wrap,
            pending: Mutex::new(HashMap::new()),
            gone: CancellationToken::new(),
        }
    }

    /// Hands the client's answer to the delivery waiting for it; `false` when
    /// no event with that id is in flight.
    pub fn answer(&self, done: SubscribeTopicEventsRequestProcessedAlpha1) -> bool {
        let result = done
            .status
            .map_or(AppResult::Success, |s| map_status(s.status));
        let tx = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&done.id);
        match tx {
            Some(tx) => tx.send(result).is_ok(),
            None => false,
        }
    }

    /// The client is gone: deliveries waiting for an answer return RETRY
    /// (and are abandoned when the subscription is stopping).
    pub fn close(&self) {
        self.gone.cancel();
    }

    fn forget(&self, id: &str) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

fn closed() -> AppResult {
    AppResult::Retry("the subscription stream closed".into())
}

#[async_trait]
impl<T: Send + 'static> AppChannel for AppStream<T> {
    async fn deliver(&self, ev: &AppEvent) -> AppResult {
        let msg = topic_event_request(ev);
        let id = msg.id.clone();
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if pending.contains_key(&id) {
                return AppResult::Retry(format!("event id {id} is already in flight"));
            }
            pending.insert(id.clone(), tx);
        }
        let sent = tokio::select! {
            _ = self.gone.cancelled() => false,
            r = self.out.send((self.wrap)(msg)) => r.is_ok(),
        };
        if !sent {
            self.forget(&id);
            return closed();
        }
        tokio::select! {
            _ = self.gone.cancelled() => {
                self.forget(&id);
                closed()
            }
            r = rx => r.unwrap_or_else(|_| closed()),
        }
    }

    async fn deliver_bulk(&self, req: &BulkAppRequest) -> Vec<(String, AppResult)> {
        // Streaming subscriptions are never bulk; answer per entry anyway.
        let mut out = Vec::with_capacity(req.entries.len());
        for entry in &req.entries {
            out.push((entry.entry_id.clone(), self.deliver(&entry.event).await));
        }
        out
    }
}
