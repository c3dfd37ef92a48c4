//! The gRPC API (`dapr.proto.runtime.v1.Dapr`) against daprd's behaviour, served
//! in process on an ephemeral port and called with a tonic client generated
//! from our own protos.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};
use tonic_types::StatusExt;

use sidebus::api::grpc::proto::dapr_client::DaprClient;
use sidebus::api::grpc::proto::subscribe_topic_events_request_alpha1::SubscribeTopicEventsRequestType as Req;
use sidebus::api::grpc::proto::subscribe_topic_events_response_alpha1::SubscribeTopicEventsResponseType as Resp;
use sidebus::api::grpc::proto::topic_event_response::TopicEventResponseStatus;
use sidebus::api::grpc::proto::*;
use sidebus::broker::in_memory::InMemory;
use sidebus::broker::{
    BrokerError, Feature, Handler, Metadata, PubSub, PublishRequest, SubscribeRequest, Subscription,
};
use sidebus::config::model::ComponentSpec;
use sidebus::config::Settings;
use sidebus::runtime::{ComponentHandle, Runtime};
use support::assert_eventually;

const WAIT: Duration = Duration::from_secs(10);

/// In-memory bus that refuses events whose bytes contain `fail`.
struct Failing(InMemory);

#[async_trait]
impl PubSub for Failing {
    fn features(&self) -> &[Feature] {
        &[]
    }
    async fn publish(&self, req: PublishRequest) -> Result<(), BrokerError> {
        if req.data.windows(4).any(|w| w == b"fail") {
            return Err(BrokerError::Rejected("refused by the test".into()));
        }
        self.0.publish(req).await
    }
    async fn subscribe(
        &self,
        req: SubscribeRequest,
        handler: Arc<dyn Handler>,
    ) -> Result<Subscription, BrokerError> {
        self.0.subscribe(req, handler).await
    }
    async fn ping(&self) -> Result<(), BrokerError> {
        Ok(())
    }
    async fn close(&self) -> Result<(), BrokerError> {
        self.0.close().await
    }
}

fn component(name: &str, md: &[(&str, &str)]) -> ComponentSpec {
    ComponentSpec {
        name: name.into(),
        type_name: "pubsub.in-memory".into(),
        version: "v1".into(),
        metadata: md
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Metadata>(),
        scopes: Vec::new(),
        source: "<test>".into(),
    }
}

struct Api {
    rt: Arc<Runtime>,
    client: DaprClient<Channel>,
    channel: Channel,
    stop: CancellationToken,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn api(token: Option<&str>) -> Api {
    let settings = Settings {
        app_id: "grpc-test".into(),
        api_token: token.map(Into::into),
        ..Settings::default()
    };
    let handles = vec![
        ComponentHandle::new(
            component("pubsub", &[]),
            Arc::new(Failing(InMemory::new())),
            "grpc-test",
        ),
        ComponentHandle::new(
            component("scoped", &[("publishingScopes", "grpc-test=allowed")]),
            Arc::new(InMemory::new()),
            "grpc-test",
        ),
    ];
    let rt = Arc::new(Runtime::new(settings, handles));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(sidebus::api::grpc::serve(
        rt.clone(),
        vec![listener],
        stop.clone(),
    ));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = DaprClient::new(channel.clone());
    Api {
        rt,
        client,
        channel,
        stop,
    }
}

fn publish_req(pubsub: &str, topic: &str, data: &str) -> PublishEventRequest {
    PublishEventRequest {
        pubsub_name: pubsub.into(),
        topic: topic.into(),
        data: data.as_bytes().to_vec(),
        data_content_type: String::new(),
        metadata: Default::default(),
    }
}

fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn publish_event_answers_like_daprd() {
    let mut a = api(None).await;
    a.client
        .publish_event(publish_req("pubsub", "orders", "hello"))
        .await
        .expect("publish ok");

    let cases = [
        (
            publish_req("nope", "orders", "x"),
            Code::InvalidArgument,
            "DAPR_PUBSUB_NOT_FOUND",
        ),
        (
            publish_req("", "orders", "x"),
            Code::InvalidArgument,
            "DAPR_PUBSUB_NAME_EMPTY",
        ),
        (
            publish_req("pubsub", "", "x"),
            Code::InvalidArgument,
            "DAPR_PUBSUB_TOPIC_NAME_EMPTY",
        ),
        (
            publish_req("scoped", "other", "x"),
            Code::PermissionDenied,
            "DAPR_PUBSUB_FORBIDDEN",
        ),
        (
            publish_req("pubsub", "orders", "please fail"),
            Code::Internal,
            "DAPR_PUBSUB_PUBLISH_MESSAGE",
        ),
    ];
    for (req, code, want) in cases {
        let err = a.client.publish_event(req).await.unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
        assert_eq!(reason(&err), want, "{err:?}");
    }
    let mut bad = publish_req("pubsub", "orders", "x");
    bad.metadata.insert("rawPayload".into(), "foo".into());
    let err = a.client.publish_event(bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err), "DAPR_PUBSUB_METADATA_DESERIALIZATION");
    let res = err.get_error_details();
    let res = res
        .resource_info()
        .expect("ResourceInfo for a component error");
    assert_eq!(
        (res.resource_type.as_str(), res.resource_name.as_str()),
        ("pubsub", "pubsub")
    );
}

fn entry(id: &str, event: &str) -> BulkPublishRequestEntry {
    BulkPublishRequestEntry {
        entry_id: id.into(),
        event: event.as_bytes().to_vec(),
        content_type: "text/plain".into(),
        metadata: Default::default(),
    }
}

fn bulk(entries: Vec<BulkPublishRequestEntry>) -> BulkPublishRequest {
    BulkPublishRequest {
        pubsub_name: "pubsub".into(),
        topic: "orders".into(),
        entries,
        metadata: Default::default(),
    }
}

#[tokio::test]
async fn bulk_publish_reports_failed_entries_and_refuses_bad_ids() {
    let mut a = api(None).await;
    let ok = a
        .client
        .bulk_publish_event(bulk(vec![entry("1", "a"), entry("2", "b")]))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.failed_entries.is_empty());

    for alpha in [false, true] {
        let req = bulk(vec![
            entry("1", "a"),
            entry("2", "fail me"),
            entry("3", "c"),
        ]);
        let resp = if alpha {
            a.client.bulk_publish_event_alpha1(req).await
        } else {
            a.client.bulk_publish_event(req).await
        };
        let failed = resp
            .expect("partial failure answers OK")
            .into_inner()
            .failed_entries;
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].entry_id, "2");
        assert!(
            failed[0].error.contains("refused by the test"),
            "{failed:?}"
        );
    }

    for entries in [vec![entry("1", "a"), entry("1", "b")], vec![entry("", "a")]] {
        let err = a
            .client
            .bulk_publish_event(bulk(entries))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(reason(&err), "DAPR_PUBSUB_EVENTS_SER");
    }
}

#[tokio::test]
async fn metadata_set_get_and_shutdown() {
    let mut a = api(None).await;
    a.client
        .set_metadata(SetMetadataRequest {
            key: "color".into(),
            value: "blue".into(),
        })
        .await
        .unwrap();
    let md = a
        .client
        .get_metadata(GetMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(md.id, "grpc-test");
    assert_eq!(
        md.extended_metadata.get("color").map(String::as_str),
        Some("blue")
    );
    assert!(md.extended_metadata.contains_key("daprRuntimeVersion"));
    let names: Vec<_> = md
        .registered_components
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["pubsub", "scoped"]);

    assert!(!a.rt.shutdown.is_cancelled());
    a.client.shutdown(ShutdownRequest {}).await.unwrap();
    assert!(a.rt.shutdown.is_cancelled());
}

#[tokio::test]
async fn api_token_is_required_on_every_call() {
    let mut a = api(Some("s3cret")).await;
    let err = a
        .client
        .publish_event(publish_req("pubsub", "t", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let mut wrong = Request::new(GetMetadataRequest {});
    wrong
        .metadata_mut()
        .insert("dapr-api-token", "nope".parse().unwrap());
    assert_eq!(
        a.client.get_metadata(wrong).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut right = Request::new(publish_req("pubsub", "t", "x"));
    right
        .metadata_mut()
        .insert("dapr-api-token", "s3cret".parse().unwrap());
    a.client.publish_event(right).await.expect("token accepted");
}

/// Token coverage: every RPC of the sidecar API, streaming included, is
/// refused without the token, and a refused call changed nothing. A new RPC
/// belongs in this list.
#[tokio::test]
async fn every_rpc_is_refused_without_the_token() {
    let a = api(Some("s3cret")).await;
    let mut c = a.client.clone();
    let bulk = || BulkPublishRequest {
        pubsub_name: "pubsub".into(),
        topic: "t".into(),
        entries: Vec::new(),
        metadata: Default::default(),
    };
    let codes = [
        (
            "PublishEvent",
            c.publish_event(publish_req("pubsub", "t", "x"))
                .await
                .map(drop),
        ),
        (
            "BulkPublishEvent",
            c.bulk_publish_event(bulk()).await.map(drop),
        ),
        (
            "BulkPublishEventAlpha1",
            c.bulk_publish_event_alpha1(bulk()).await.map(drop),
        ),
        (
            "GetMetadata",
            c.get_metadata(GetMetadataRequest {}).await.map(drop),
        ),
        (
            "SetMetadata",
            c.set_metadata(SetMetadataRequest {
                key: "k".into(),
                value: "v".into(),
            })
            .await
            .map(drop),
        ),
        ("Shutdown", c.shutdown(ShutdownRequest {}).await.map(drop)),
        (
            "SubscribeTopicEventsAlpha1",
            open(&a, initial("t", &[])).await.map(drop),
        ),
    ];
    for (rpc, result) in codes {
        let code = result.err().map(|s| s.code());
        assert_eq!(code, Some(Code::Unauthenticated), "{rpc}");
    }
    assert!(
        !a.rt.shutdown.is_cancelled(),
        "a refused Shutdown did nothing"
    );
    assert!(
        a.rt.extended_metadata.read().unwrap().is_empty(),
        "a refused SetMetadata did nothing"
    );
}

#[tokio::test]
async fn other_methods_are_unimplemented() {
    let a = api(None).await;
    let mut grpc = tonic::client::Grpc::new(a.channel.clone());
    grpc.ready().await.unwrap();
    let codec: tonic_prost::ProstCodec<GetMetadataRequest, GetMetadataResponse> =
        Default::default();
    let path = http::uri::PathAndQuery::from_static("/dapr.proto.runtime.v1.Dapr/GetState");
    let err = grpc
        .unary(Request::new(GetMetadataRequest {}), path, codec)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("not served by sidebus"), "{err:?}");
    let other = http::uri::PathAndQuery::from_static("/some.Other/Method");
    let codec: tonic_prost::ProstCodec<GetMetadataRequest, GetMetadataResponse> =
        Default::default();
    grpc.ready().await.unwrap();
    let err = grpc
        .unary(Request::new(GetMetadataRequest {}), other, codec)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
}

// ---- streaming subscriptions ----

struct Stream {
    tx: mpsc::Sender<SubscribeTopicEventsRequestAlpha1>,
    rx: Streaming<SubscribeTopicEventsResponseAlpha1>,
}

fn initial(topic: &str, md: &[(&str, &str)]) -> SubscribeTopicEventsRequestAlpha1 {
    SubscribeTopicEventsRequestAlpha1 {
        subscribe_topic_events_request_type: Some(Req::InitialRequest(
            SubscribeTopicEventsRequestInitialAlpha1 {
                pubsub_name: "pubsub".into(),
                topic: topic.into(),
                metadata: md
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                dead_letter_topic: None,
            },
        )),
    }
}

async fn open(a: &Api, first: SubscribeTopicEventsRequestAlpha1) -> Result<Stream, Status> {
    let (tx, rx) = mpsc::channel(16);
    tx.send(first).await.unwrap();
    let mut client = a.client.clone();
    let rx = client
        .subscribe_topic_events_alpha1(ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok(Stream { tx, rx })
}

async fn next(s: &mut Stream) -> Resp {
    tokio::time::timeout(WAIT, s.rx.message())
        .await
        .expect("a message in time")
        .expect("stream ok")
        .expect("stream open")
        .subscribe_topic_events_response_type
        .expect("set")
}

async fn next_event(s: &mut Stream) -> TopicEventRequest {
    match next(s).await {
        Resp::EventMessage(ev) => ev,
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn ack(s: &Stream, id: &str, status: TopicEventResponseStatus) {
    ack_via(&s.tx, id, status).await
}

async fn ack_via(
    tx: &mpsc::Sender<SubscribeTopicEventsRequestAlpha1>,
    id: &str,
    status: TopicEventResponseStatus,
) {
    let msg = SubscribeTopicEventsRequestAlpha1 {
        subscribe_topic_events_request_type: Some(Req::EventProcessed(
            SubscribeTopicEventsRequestProcessedAlpha1 {
                id: id.into(),
                status: Some(TopicEventResponse {
                    status: status as i32,
                }),
            },
        )),
    };
    tx.send(msg).await.unwrap();
}

/// What a stream yields: a message, its end (`Ok(None)`) or an error.
type StreamItem = Result<Option<SubscribeTopicEventsResponseAlpha1>, Status>;

/// Reads a stream in the background and stamps every item with the moment
/// it reached the client, so a test checks that something came only
/// *after* an action (an ordering) instead of watching a quiet window.
/// Aborting the returned task closes the reading half.
fn stamped(
    mut rx: Streaming<SubscribeTopicEventsResponseAlpha1>,
) -> (
    mpsc::UnboundedReceiver<(Instant, StreamItem)>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, out) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        loop {
            let item = rx.message().await;
            let last = !matches!(item, Ok(Some(_)));
            if tx.send((Instant::now(), item)).is_err() || last {
                return;
            }
        }
    });
    (out, reader)
}

/// The next stamped item, within the deadline.
async fn next_stamped(
    arrivals: &mut mpsc::UnboundedReceiver<(Instant, StreamItem)>,
) -> (Instant, StreamItem) {
    tokio::time::timeout(WAIT, arrivals.recv())
        .await
        .expect("a message in time")
        .expect("the reader is running")
}

async fn publish(a: &Api, topic: &str, data: &str) {
    a.client
        .clone()
        .publish_event(publish_req("pubsub", topic, data))
        .await
        .unwrap();
}

fn streaming_count(a: &Api) -> usize {
    a.rt.subscriptions
        .read()
        .unwrap()
        .iter()
        .filter(|s| s.kind.as_str() == "STREAMING")
        .count()
}

#[tokio::test]
async fn stream_initial_response_then_events_acked_by_id() {
    let a = api(None).await;
    let mut s = open(&a, initial("st1", &[])).await.unwrap();
    assert!(matches!(next(&mut s).await, Resp::InitialResponse(_)));
    assert_eq!(streaming_count(&a), 1);

    publish(&a, "st1", "one").await;
    let ev = next_event(&mut s).await;
    assert_eq!((ev.path.as_str(), ev.topic.as_str()), ("/", "st1"));
    assert_eq!(ev.pubsub_name, "pubsub");
    assert_eq!(ev.data, b"one");
    assert_eq!(ev.data_content_type, "text/plain");
    ack(&s, &ev.id, TopicEventResponseStatus::Success).await;

    // RETRY: the same event comes again; DROP: it does not.
    publish(&a, "st1", "two").await;
    let first = next_event(&mut s).await;
    ack(&s, &first.id, TopicEventResponseStatus::Retry).await;
    let again = next_event(&mut s).await;
    assert_eq!(again.id, first.id, "RETRY redelivers the same event");
    ack(&s, &again.id, TopicEventResponseStatus::Drop).await;
    publish(&a, "st1", "three").await;
    let third = next_event(&mut s).await;
    assert_eq!(third.data, b"three", "the dropped event is not redelivered");
    ack(&s, &third.id, TopicEventResponseStatus::Success).await;

    // Closing the stream removes the subscription.
    drop(s);
    assert_eventually!(
        "stream subscription to be removed after close (observed: streaming subscriptions)",
        WAIT,
        streaming_count(&a),
        |n: &usize| *n == 0
    );
}

#[tokio::test]
async fn stream_in_flight_bound_and_redelivery_after_close() {
    let a = api(None).await;
    let md = [("maxInFlight", "2"), ("ordering", "none")];
    let mut s = open(&a, initial("st2", &md)).await.unwrap();
    assert!(matches!(next(&mut s).await, Resp::InitialResponse(_)));
    for i in 0..4 {
        publish(&a, "st2", &format!("e{i}")).await;
    }
    let e1 = next_event(&mut s).await;
    let e2 = next_event(&mut s).await;
    let Stream { tx, rx } = s;
    let (mut arrivals, reader) = stamped(rx);
    // The app holds both events a while (the scenario, not a wait for
    // anything); a third event may reach it only after an answer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answered_at = Instant::now();
    ack_via(&tx, &e1.id, TopicEventResponseStatus::Success).await;
    let (arrived_at, third) = next_stamped(&mut arrivals).await;
    assert!(
        arrived_at >= answered_at,
        "a third event while two are unanswered: {third:?}"
    );
    let e3 = match third
        .expect("stream ok")
        .expect("stream open")
        .subscribe_topic_events_response_type
    {
        Some(Resp::EventMessage(ev)) => ev,
        other => panic!("expected an event, got {other:?}"),
    };
    assert_ne!(e3.id, e2.id);

    // Close with e2 and e3 unanswered: a new stream gets them again.
    reader.abort();
    drop((tx, arrivals));
    assert_eventually!(
        "the first stream to be gone (observed: streaming subscriptions)",
        WAIT,
        streaming_count(&a),
        |n: &usize| *n == 0
    );
    let mut s2 = open(&a, initial("st2", &[("ordering", "none")]))
        .await
        .unwrap();
    assert!(matches!(next(&mut s2).await, Resp::InitialResponse(_)));
    let mut seen = Vec::new();
    for _ in 0..3 {
        let ev = next_event(&mut s2).await;
        ack(&s2, &ev.id, TopicEventResponseStatus::Success).await;
        seen.push(ev.id);
    }
    assert!(seen.contains(&e2.id) && seen.contains(&e3.id), "{seen:?}");
    assert!(!seen.contains(&e1.id), "acked event came back: {seen:?}");
}

#[tokio::test]
async fn stream_without_initial_request_or_topic_fails() {
    let a = api(None).await;
    let processed = SubscribeTopicEventsRequestAlpha1 {
        subscribe_topic_events_request_type: Some(Req::EventProcessed(
            SubscribeTopicEventsRequestProcessedAlpha1 {
                id: "x".into(),
                status: None,
            },
        )),
    };
    let err = open(&a, processed).await.err().expect("refused");
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = open(&a, initial("", &[])).await.err().expect("refused");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(reason(&err), "DAPR_PUBSUB_TOPIC_NAME_EMPTY");

    // A second initial_request ends the stream with an error.
    let mut s = open(&a, initial("st3", &[])).await.unwrap();
    assert!(matches!(next(&mut s).await, Resp::InitialResponse(_)));
    s.tx.send(initial("st3", &[])).await.unwrap();
    let end = tokio::time::timeout(WAIT, s.rx.message())
        .await
        .expect("in time");
    assert_eq!(end.unwrap_err().code(), Code::InvalidArgument);
}

#[tokio::test]
async fn stream_drains_at_sidecar_shutdown() {
    let a = api(None).await;
    let mut s = open(&a, initial("st4", &[])).await.unwrap();
    assert!(matches!(next(&mut s).await, Resp::InitialResponse(_)));
    publish(&a, "st4", "last").await;
    let ev = next_event(&mut s).await;
    let Stream { tx, rx } = s;
    let (mut arrivals, _reader) = stamped(rx);
    a.rt.shutdown.cancel();
    // The event at the client can still be answered; then the stream ends.
    // The app answers a while after the shutdown began (the scenario, not a
    // wait for anything): the end must reach it only after that answer.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answered_at = Instant::now();
    ack_via(&tx, &ev.id, TopicEventResponseStatus::Success).await;
    let (ended_at, end) = next_stamped(&mut arrivals).await;
    assert!(
        ended_at >= answered_at,
        "stream ended before the in-flight event was answered: {end:?}"
    );
    assert_eq!(end.unwrap_err().code(), Code::Unavailable);
    assert_eventually!(
        "stream subscription to be removed at shutdown (observed: streaming subscriptions)",
        WAIT,
        streaming_count(&a),
        |n: &usize| *n == 0
    );
}
