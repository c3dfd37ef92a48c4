//! The streaming app channel: a subscription whose app is a client stream
//! (`SubscribeTopicEventsAlpha1`). Each event goes out as the
//! `TopicEventRequest` a gRPC app would get; the client answers with
//! `event_processed{id, status}`, matched here by CloudEvent id. The gRPC
//! edge only moves messages between its tonic stream and this channel.
//!
//! A client that stops answering (half-open, hung) would hold its share of
//! the topic forever: an event not answered within the answer timeout is
//! retried and the stream is closed, so the subscription ends and the
//! broker hands its events to the group's other members.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

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
    answer_timeout: Duration,
}

impl<T: Send + 'static> AppStream<T> {
    /// A channel sending events on `out`, each made by `wrap`; an event
    /// not answered within `answer_timeout` closes the channel.
    pub fn new(
        out: mpsc::Sender<T>,
        wrap: fn(TopicEventRequest) -> T,
        answer_timeout: Duration,
    ) -> Self {
        Self {
            out,
            wrap,
            pending: Mutex::new(HashMap::new()),
            gone: CancellationToken::new(),
            answer_timeout,
        }
    }

    /// Resolves once the channel is closed: by [`close`](Self::close), or
    /// because the client left an event unanswered too long.
    pub async fn closed(&self) {
        self.gone.cancelled().await;
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
            r = tokio::time::timeout(self.answer_timeout, rx) => match r {
                Ok(answer) => answer.unwrap_or_else(|_| closed()),
                Err(_) => {
                    self.forget(&id);
                    tracing::warn!(id = %id, timeout_s = self.answer_timeout.as_secs(), "No answer from the subscription stream in time; closing it so its events go elsewhere.");
                    self.gone.cancel();
                    AppResult::Retry(format!("no answer within {:?}", self.answer_timeout))
                }
            },
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use tokio::sync::mpsc;

    use super::*;

    fn event(id: &str) -> AppEvent {
        let mut event = crate::envelope::Event::new();
        event.insert("id".into(), id.into());
        AppEvent {
            pubsub_name: "ps".into(),
            topic: "t".into(),
            path: "/".into(),
            body: Bytes::new(),
            event,
            metadata: Default::default(),
        }
    }

    /// A client that never answers held its events (and the partitions
    /// behind them) forever; now the event is retried after the answer
    /// timeout and the stream is closed.
    #[tokio::test(start_paused = true)]
    async fn an_unanswered_event_is_retried_and_closes_the_stream() {
        let (tx, mut rx) = mpsc::channel(4);
        let stream = AppStream::new(tx, |m| m, Duration::from_secs(60));
        let start = tokio::time::Instant::now();
        let result = stream.deliver(&event("e1")).await;
        assert!(matches!(result, AppResult::Retry(_)), "{result:?}");
        assert_eq!(start.elapsed(), Duration::from_secs(60));
        assert_eq!(rx.recv().await.map(|m| m.id), Some("e1".to_string()));
        tokio::time::timeout(Duration::from_millis(1), stream.closed())
            .await
            .expect("the stream is closed");
        assert!(
            stream.pending.lock().expect("lock").is_empty(),
            "nothing left pending"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_in_time_is_the_result() {
        let (tx, mut rx) = mpsc::channel(4);
        let stream = std::sync::Arc::new(AppStream::new(tx, |m| m, Duration::from_secs(60)));
        let answering = {
            let stream = stream.clone();
            tokio::spawn(async move {
                let msg = rx.recv().await.expect("event");
                tokio::time::sleep(Duration::from_secs(59)).await;
                stream.answer(SubscribeTopicEventsRequestProcessedAlpha1 {
                    id: msg.id,
                    status: None,
                })
            })
        };
        assert_eq!(stream.deliver(&event("e2")).await, AppResult::Success);
        assert!(answering.await.expect("join"));
    }
}
