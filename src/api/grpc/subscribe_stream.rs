//! `SubscribeTopicEventsAlpha1`: a subscription whose app is the gRPC
//! stream itself (`docs/grpc.md`, *Streaming subscriptions*).
//!
//! The client's first message must be `initial_request` (pubsub and topic
//! required). The sidecar registers a STREAMING subscription (one rule, path
//! `/`), answers `initial_response`, and starts one broker subscription for
//! this stream through its own [`Subscriber`], so the stream gets the
//! same in-flight bound (`maxInFlight` in the request metadata, default
//! 256), ordering lanes, retries and dead letters as any app. The stream is
//! the app through the streaming app channel (`delivery/app_stream.rs`);
//! this file only adapts the tonic stream to it.
//!
//! Consumer group: the component's (consumerGroup / consumerID / app id),
//! like the app's other subscriptions. Several streams of one app on one
//! topic therefore share the events, as replicas do, and as daprd's streams
//! do on Kafka. A group per stream would leave a group behind on the broker
//! for every connection ever made.
//!
//! Each `event_message` is answered by `event_processed{id, status}`,
//! matched by CloudEvent id; an id already waiting for its answer is
//! retried later rather than sent twice. When the stream ends (client close,
//! cancel, a second `initial_request`) the subscription is removed and
//! unanswered events are abandoned: the broker redelivers them. At sidecar
//! shutdown the stream is drained like an app subscription: no new events,
//! answers to events already sent are awaited up to the grace period, then
//! the stream ends with UNAVAILABLE.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use crate::api::error::ApiError;
use crate::config::model::{BulkSubscribe, RouteRule, SubscriptionKind, SubscriptionSpec};
use crate::delivery::{AppStream, SubscriptionOptions};
use crate::proto::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as Req;
use crate::proto::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as Resp;
use crate::proto::{
    SubscribeTopicEventsRequestAlpha1, SubscribeTopicEventsRequestInitialAlpha1,
    SubscribeTopicEventsResponseAlpha1, SubscribeTopicEventsResponseInitialAlpha1,
    TopicEventRequest,
};
use crate::runtime::{PublishError, Runtime, Subscriber};

/// One message of the response stream.
type Outbound = Result<SubscribeTopicEventsResponseAlpha1, Status>;

/// The response stream of one subscription.
pub type EventStream = ReceiverStream<Outbound>;

/// The streaming app channel over this stream's outbound queue.
type StreamChannel = AppStream<Outbound>;

/// An event for the client, as a response-stream message.
fn event_message(msg: TopicEventRequest) -> Outbound {
    Ok(SubscribeTopicEventsResponseAlpha1 {
        subscribe_topic_events_response_type: Some(Resp::EventMessage(msg)),
    })
}

/// Route path of every streaming subscription (daprd's).
const STREAM_PATH: &str = "/";
/// How long in-flight deliveries may finish after the stream ended; the
/// client is gone, so this only bounds settling with the broker.
const TEARDOWN_GRACE: Duration = Duration::from_secs(2);
/// Longest wait to hand the final status to a client that stopped reading.
const FINAL_SEND_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a client may take to send `initial_request`.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an event may wait for its `event_processed`; then it is retried
/// and the stream closed (a hung client must not hold its partitions).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// Most streaming subscriptions one sidecar serves at once.
pub const MAX_STREAMS: usize = 256;

/// Checks the initial request and turns it into a subscription spec.
fn spec_for(
    rt: &Runtime,
    init: SubscribeTopicEventsRequestInitialAlpha1,
) -> Result<(SubscriptionSpec, SubscriptionOptions), Status> {
    if rt.components.is_empty() {
        return Err(ApiError::from(PublishError::NotConfigured).into());
    }
    if init.pubsub_name.is_empty() {
        return Err(ApiError::from(PublishError::PubsubEmpty).into());
    }
    let Some(component) = rt.component(&init.pubsub_name) else {
        return Err(ApiError::from(PublishError::PubsubNotFound(init.pubsub_name)).into());
    };
    if init.topic.is_empty() {
        return Err(ApiError::from(PublishError::TopicEmpty {
            pubsub: init.pubsub_name,
        })
        .into());
    }
    if !component.scopes.may_subscribe(&init.topic) {
        return Err(Status::permission_denied(format!(
            "topic {} is not allowed for app id {} to subscribe to",
            init.topic,
            rt.app_id()
        )));
    }
    let spec = SubscriptionSpec {
        name: format!("stream-{}", uuid::Uuid::new_v4()),
        pubsub_name: init.pubsub_name,
        topic: init.topic,
        rules: vec![RouteRule {
            match_expr: String::new(),
            path: STREAM_PATH.into(),
        }],
        dead_letter_topic: init.dead_letter_topic.filter(|t| !t.is_empty()),
        metadata: init.metadata.into_iter().collect(),
        bulk: BulkSubscribe::default(),
        scopes: Vec::new(),
        kind: SubscriptionKind::Streaming,
    };
    let opts = SubscriptionOptions::from_spec(&spec)
        .map_err(|e| Status::invalid_argument(format!("bad subscription metadata: {e}")))?;
    Ok((spec, opts))
}

/// Starts the streaming subscription; the stream answers `initial_response`
/// first, then events.
pub(super) async fn subscribe(
    rt: Arc<Runtime>,
    mut inbound: Streaming<SubscribeTopicEventsRequestAlpha1>,
) -> Result<EventStream, Status> {
    let first = tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, inbound.message())
        .await
        .map_err(|_| {
            Status::deadline_exceeded(format!(
                "no initial_request within {}s",
                FIRST_MESSAGE_TIMEOUT.as_secs()
            ))
        })??;
    let init = match first.and_then(|m| m.subscribe_topic_events_request_type) {
        Some(Req::InitialRequest(init)) => init,
        _ => {
            return Err(Status::invalid_argument(
                "the first message of a subscription stream must be initial_request",
            ))
        }
    };
    let (spec, opts) = spec_for(&rt, init)?;
    let streams = rt
        .subscriptions
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|s| s.kind == SubscriptionKind::Streaming)
        .count();
    if streams >= MAX_STREAMS {
        return Err(Status::resource_exhausted(format!(
            "this sidecar already serves {MAX_STREAMS} streaming subscriptions"
        )));
    }
    // One slot per in-flight event plus the initial response and a final
    // error: the channel never holds more than the dispatcher lets out.
    let (tx, rx) = mpsc::channel(opts.max_in_flight.saturating_add(2));
    let initial = SubscribeTopicEventsResponseAlpha1 {
        subscribe_topic_events_response_type: Some(Resp::InitialResponse(
            SubscribeTopicEventsResponseInitialAlpha1 {},
        )),
    };
    tx.send(Ok(initial))
        .await
        .map_err(|_| Status::cancelled("the client went away"))?;
    let channel = Arc::new(StreamChannel::new(
        tx.clone(),
        event_message,
        ANSWER_TIMEOUT,
    ));
    let subscriber = Subscriber::new(rt.clone(), channel.clone());
    tracing::info!(pubsub = %spec.pubsub_name, topic = %spec.topic, name = %spec.name,
        "Streaming subscription started.");
    let name = spec.name.clone();
    subscriber.start(vec![spec]).await;
    tokio::spawn(async move {
        let stopping = tokio::select! {
            ended = read_answers(&mut inbound, &channel) => {
                if let Some(status) = ended {
                    send_final(&tx, status).await;
                }
                false
            }
            _ = tx.closed() => false,
            _ = channel.closed() => {
                send_final(&tx, Status::deadline_exceeded(format!(
                    "an event was not answered within {}s", ANSWER_TIMEOUT.as_secs()
                ))).await;
                false
            }
            _ = rt.shutdown.cancelled() => true,
        };
        if stopping {
            // As for app subscriptions: stop fetching, and let events already
            // at the client finish within the grace period while answers
            // are still read.
            let grace = Duration::from_secs(rt.settings.graceful_shutdown_seconds);
            let drain = subscriber.shutdown(grace);
            tokio::pin!(drain);
            tokio::select! {
                _ = &mut drain => {}
                _ = read_answers(&mut inbound, &channel) => {
                    tokio::join!(&mut drain, async { channel.close() });
                }
            }
            send_final(&tx, Status::unavailable("the sidecar is shutting down")).await;
        } else {
            // Stop first (join! polls in order), so deliveries that return
            // because the stream is gone are abandoned, not retried.
            tokio::join!(subscriber.shutdown(TEARDOWN_GRACE), async {
                channel.close()
            });
        }
        channel.close();
        rt.subscriptions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|s| s.name != name);
        tracing::info!(name = %name, "Streaming subscription ended.");
    });
    Ok(ReceiverStream::new(rx))
}

/// Ends the stream with `status`, unless the client stopped reading.
async fn send_final(tx: &mpsc::Sender<Outbound>, status: Status) {
    let _ = tokio::time::timeout(FINAL_SEND_TIMEOUT, tx.send(Err(status))).await;
}

/// Reads `event_processed` answers until the stream ends; `Some` is the
/// error to end the stream with.
async fn read_answers(
    inbound: &mut Streaming<SubscribeTopicEventsRequestAlpha1>,
    channel: &StreamChannel,
) -> Option<Status> {
    loop {
        // Streaming::message is cancel safe: the caller may drop this future
        // and read on with a new one.
        let next = inbound.message().await;
        let msg = match next {
            Ok(Some(m)) => m,
            Ok(None) => return None,
            Err(status) => {
                tracing::debug!(error = %status, "Subscription stream read failed.");
                return None;
            }
        };
        match msg.subscribe_topic_events_request_type {
            Some(Req::EventProcessed(done)) => {
                let id = done.id.clone();
                if !channel.answer(done) {
                    tracing::debug!(id = %id, "Answer for an event not in flight; ignored.");
                }
            }
            Some(Req::InitialRequest(_)) => {
                return Some(Status::invalid_argument(
                    "initial_request was already sent on this stream",
                ))
            }
            None => tracing::debug!("Empty subscription stream message; ignored."),
        }
    }
}
