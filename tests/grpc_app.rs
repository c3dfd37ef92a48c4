//! Delivery to a gRPC app (`--app-protocol grpc`) through the real binary:
//! a tonic test app serving `AppCallback` (+ `AppCallbackAlpha`) with
//! programmatic subscriptions, events published over the HTTP API.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use sidebus::api::grpc::proto::app_callback_alpha_server::{
    AppCallbackAlpha, AppCallbackAlphaServer,
};
use sidebus::api::grpc::proto::app_callback_server::{AppCallback, AppCallbackServer};
use sidebus::api::grpc::proto::topic_event_bulk_request_entry::Event as BulkEvent;
use sidebus::api::grpc::proto::topic_event_response::TopicEventResponseStatus as St;
use sidebus::api::grpc::proto::*;
use support::assert_eventually;
use support::process::{request, SidecarProcess};

/// One call the app received.
#[derive(Debug, Clone)]
struct Call {
    method: &'static str,
    topic: String,
    path: String,
    id: String,
    data: Vec<u8>,
    metadata: HashMap<String, String>,
}

#[derive(Default)]
struct App {
    calls: Mutex<Vec<Call>>,
}

impl App {
    fn calls(&self, topic: &str) -> Vec<Call> {
        let calls = self.calls.lock().unwrap();
        calls.iter().filter(|c| c.topic == topic).cloned().collect()
    }
}

#[derive(Clone)]
struct Svc(Arc<App>);

fn sub(topic: &str, rules: &[(&str, &str)], default: &str) -> TopicSubscription {
    TopicSubscription {
        pubsub_name: "pubsub".into(),
        topic: topic.into(),
        metadata: Default::default(),
        routes: (!rules.is_empty() || !default.is_empty()).then(|| TopicRoutes {
            rules: rules
                .iter()
                .map(|(m, p)| TopicRule {
                    r#match: m.to_string(),
                    path: p.to_string(),
                })
                .collect(),
            default: default.into(),
        }),
        dead_letter_topic: String::new(),
        bulk_subscribe: None,
    }
}

#[tonic::async_trait]
impl AppCallback for Svc {
    async fn list_topic_subscriptions(
        &self,
        _: Request<()>,
    ) -> Result<Response<ListTopicSubscriptionsResponse>, Status> {
        let mut drop = sub("t-drop", &[], "/drop");
        drop.dead_letter_topic = "t-dlq".into();
        let mut bulk = sub("t-bulk", &[], "/bulk");
        bulk.bulk_subscribe = Some(BulkSubscribeConfig {
            enabled: true,
            max_messages_count: 2,
            max_await_duration_ms: 100,
        });
        let mut retry = sub("t-retry", &[], "/retry");
        retry
            .metadata
            .insert("retryInitialInterval".into(), "10ms".into());
        let mut err = sub("t-err", &[], "/err");
        err.metadata
            .insert("retryInitialInterval".into(), "10ms".into());
        Ok(Response::new(ListTopicSubscriptionsResponse {
            subscriptions: vec![
                sub("t-ok", &[], "/ok"),
                retry,
                drop,
                sub("t-dlq", &[], "/dlq"),
                sub("t-unimpl", &[], "/unimpl"),
                err,
                sub(
                    "t-routes",
                    &[(r#"event.type == "special""#, "/special")],
                    "/other",
                ),
                sub("t-noroutes", &[], ""),
                bulk,
            ],
        }))
    }

    async fn on_topic_event(
        &self,
        req: Request<TopicEventRequest>,
    ) -> Result<Response<TopicEventResponse>, Status> {
        let metadata = req
            .metadata()
            .iter()
            .filter_map(|kv| match kv {
                tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                    Some((k.to_string(), v.to_str().ok()?.to_string()))
                }
                _ => None,
            })
            .collect();
        let ev = req.into_inner();
        let earlier = self.0.calls(&ev.topic).len();
        self.0.calls.lock().unwrap().push(Call {
            method: "OnTopicEvent",
            topic: ev.topic.clone(),
            path: ev.path.clone(),
            id: ev.id.clone(),
            data: ev.data.clone(),
            metadata,
        });
        let status = match ev.topic.as_str() {
            "t-retry" if earlier == 0 => St::Retry,
            "t-drop" => St::Drop,
            "t-unimpl" => return Err(Status::unimplemented("no handler")),
            "t-err" if earlier == 0 => return Err(Status::internal("boom")),
            _ => St::Success,
        };
        Ok(Response::new(TopicEventResponse {
            status: status as i32,
        }))
    }

    async fn on_bulk_topic_event(
        &self,
        _: Request<TopicEventBulkRequest>,
    ) -> Result<Response<TopicEventBulkResponse>, Status> {
        // An older SDK: only the alpha bulk method exists.
        Err(Status::unimplemented("use the alpha method"))
    }
}

#[tonic::async_trait]
impl AppCallbackAlpha for Svc {
    async fn on_bulk_topic_event_alpha1(
        &self,
        req: Request<TopicEventBulkRequest>,
    ) -> Result<Response<TopicEventBulkResponse>, Status> {
        let req = req.into_inner();
        let mut statuses = Vec::new();
        for e in &req.entries {
            let (id, data) = match &e.event {
                Some(BulkEvent::CloudEvent(ce)) => (ce.id.clone(), ce.data.clone()),
                Some(BulkEvent::Bytes(b)) => (String::new(), b.clone()),
                None => (String::new(), Vec::new()),
            };
            self.0.calls.lock().unwrap().push(Call {
                method: "OnBulkTopicEventAlpha1",
                topic: req.topic.clone(),
                path: req.path.clone(),
                id,
                data,
                metadata: HashMap::new(),
            });
            statuses.push(TopicEventBulkResponseEntry {
                entry_id: e.entry_id.clone(),
                status: St::Success as i32,
            });
        }
        Ok(Response::new(TopicEventBulkResponse { statuses }))
    }
}

async fn start_app() -> (Arc<App>, u16) {
    let app = Arc::new(App::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let svc = Svc(app.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AppCallbackServer::new(svc.clone()))
            .add_service(AppCallbackAlphaServer::new(svc))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (app, port)
}

async fn publish(sc: &SidecarProcess, topic: &str, body: &str, ce_type: Option<&str>) {
    let query = ce_type.map(|t| format!("metadata.cloudevent.type={t}"));
    publish_with(sc, topic, body, query.as_deref()).await
}

/// Publishes with partition key `k`: one delivery lane and one partition,
/// so a later event with the same key comes after every delivery (and any
/// redelivery) of an earlier one.
async fn publish_keyed(sc: &SidecarProcess, topic: &str, body: &str) {
    publish_with(sc, topic, body, Some("metadata.partitionKey=k")).await
}

async fn publish_with(sc: &SidecarProcess, topic: &str, body: &str, query: Option<&str>) {
    let mut url = sc.url(&format!("/v1.0/publish/pubsub/{topic}"));
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    let r = request(
        "POST",
        &url,
        &[("content-type", "text/plain")],
        body.to_string(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 204, "{:?}", r.body);
}

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_app_receives_events_and_answers_map_like_daprd() {
    let (app, port) = start_app().await;
    let port = port.to_string();
    let sc = SidecarProcess::start(&[
        "--app-id",
        "grpc-app",
        "--app-port",
        &port,
        "--app-protocol",
        "grpc",
        "--app-api-token",
        "app-s3cret",
    ]);
    sc.wait_status("/v1.0/healthz", 204).await;

    // Discovery: every subscription is reported, PROGRAMMATIC.
    let md = request("GET", &sc.url("/v1.0/metadata"), &[], Vec::new())
        .await
        .unwrap()
        .json();
    assert_eq!(md["subscriptions"].as_array().unwrap().len(), 9, "{md}");
    assert_eq!(md["appConnectionProperties"]["protocol"], "grpc");

    publish_keyed(&sc, "t-ok", "hello").await;
    wait_calls(&app, "t-ok", 1).await;
    let call = &app.calls("t-ok")[0];
    assert_eq!(
        (call.path.as_str(), call.data.as_slice()),
        ("/ok", &b"hello"[..])
    );
    assert_eq!(
        call.metadata.get("pubsubname").map(String::as_str),
        Some("pubsub")
    );

    // RETRY and a gRPC error are retried; the second attempt succeeds.
    publish(&sc, "t-retry", "r", None).await;
    publish(&sc, "t-err", "e", None).await;
    wait_calls(&app, "t-retry", 2).await;
    wait_calls(&app, "t-err", 2).await;
    assert_eq!(app.calls("t-retry")[0].id, app.calls("t-retry")[1].id);

    // DROP is not retried and goes to the dead-letter topic.
    publish_keyed(&sc, "t-drop", "d").await;
    wait_calls(&app, "t-dlq", 1).await;
    assert_eq!(app.calls("t-drop").len(), 1);

    // UNIMPLEMENTED is a drop: called once, never again.
    publish_keyed(&sc, "t-unimpl", "u").await;
    wait_calls(&app, "t-unimpl", 1).await;

    // Routes: the matched rule's path; no routes: an empty path.
    publish(&sc, "t-routes", "s", Some("special")).await;
    publish(&sc, "t-routes", "o", None).await;
    publish(&sc, "t-noroutes", "n", None).await;
    wait_calls(&app, "t-routes", 2).await;
    wait_calls(&app, "t-noroutes", 1).await;
    let mut paths: Vec<_> = app.calls("t-routes").into_iter().map(|c| c.path).collect();
    paths.sort();
    assert_eq!(paths, ["/other", "/special"]);
    assert_eq!(app.calls("t-noroutes")[0].path, "");

    // Bulk: OnBulkTopicEvent is UNIMPLEMENTED, so the alpha method is used.
    publish(&sc, "t-bulk", "b1", None).await;
    publish(&sc, "t-bulk", "b2", None).await;
    wait_calls(&app, "t-bulk", 2).await;
    assert!(app
        .calls("t-bulk")
        .iter()
        .all(|c| c.method == "OnBulkTopicEventAlpha1" && c.path == "/bulk"));

    // Nothing else arrives (no redelivery of DROP / UNIMPLEMENTED / SUCCESS):
    // a marker with the same key follows each event in its delivery lane
    // (which holds the key until the event is settled, retries included)
    // and in its partition (a redelivery by the broker comes first), so once
    // the marker is at the app every earlier attempt is too.
    for topic in ["t-drop", "t-unimpl", "t-ok"] {
        publish_keyed(&sc, topic, "marker").await;
        assert_eventually!(
            format!("the marker on {topic} (observed: calls)"),
            WAIT,
            app.calls(topic).len(),
            |_: &usize| app.calls(topic).iter().any(|c| c.data == b"marker")
        );
    }
    let attempts =
        |topic: &str, data: &[u8]| app.calls(topic).iter().filter(|c| c.data == data).count();
    assert_eq!(attempts("t-drop", b"d"), 1, "DROP was redelivered");
    assert_eq!(
        attempts("t-unimpl", b"u"),
        1,
        "UNIMPLEMENTED was redelivered"
    );
    assert_eq!(attempts("t-ok", b"hello"), 1, "SUCCESS was redelivered");
}

/// Waits until the app got `n` calls for `topic`, failing if it got more.
async fn wait_calls(app: &App, topic: &str, n: usize) {
    let got = assert_eventually!(
        format!("{n} calls on {topic} (observed: how many)"),
        WAIT,
        app.calls(topic).len(),
        |got: &usize| *got >= n
    );
    assert_eq!(got, n, "calls on {topic}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_port_taken_fails_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let data = tempfile::tempdir().unwrap();
    let (status, _, stderr) = support::process::run_to_end(&[
        "--data-dir",
        data.path().to_str().unwrap(),
        "--dapr-http-port",
        &support::process::free_port_now().to_string(),
        "--metrics-port",
        &support::process::free_port_now().to_string(),
        "--dapr-grpc-port",
        &port,
    ]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("gRPC API"), "{stderr}");
}
