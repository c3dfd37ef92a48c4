//! Bulk publish (`/v1.0-alpha1/publish/bulk/...` and `/v1.0/publish/bulk/...`):
//! per-entry envelopes, request validation, and exact failed entries.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::StatusCode;
use serde_json::{json, Value};
use sidebus::broker::conformance::unique;
use sidebus::broker::{
    BrokerError, Handler, PubSub, PublishRequest, SubscribeRequest, Subscription,
};

use super::{request, settings, Flaky, Harness, APP_ID};

async fn post(h: &Harness, path: &str, body: &Value) -> super::Reply {
    h.send(request(
        "POST",
        path,
        Some("application/json"),
        body.to_string(),
    ))
    .await
}

fn events(rec: &sidebus::broker::conformance::Recorder) -> Vec<Value> {
    rec.deliveries()
        .iter()
        .map(|m| serde_json::from_slice(&m.data).unwrap_or(Value::Null))
        .collect()
}

#[tokio::test]
async fn every_entry_gets_its_own_envelope() {
    let h = Harness::plain();
    let topic = unique("bulk");
    let (rec, _sub) = h.listen(&topic).await;
    let body = json!([
        {"entryId": "1", "event": {"n": 1}, "contentType": "application/json"},
        {"entryId": "2", "event": "plain", "contentType": "text/plain",
         "metadata": {"cloudevent.tenantid": "acme"}},
        {"entryId": "3", "event": "AAEC/w==", "contentType": "application/octet-stream"},
    ]);
    let r = post(
        &h,
        &format!("/v1.0-alpha1/publish/bulk/ps/{topic}?metadata.shared=yes"),
        &body,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    rec.wait_for("three events", |r| r.distinct() == 3).await;
    let got = events(&rec);
    let by_type = |ct: &str| {
        got.iter()
            .find(|e| e["datacontenttype"] == ct)
            .cloned()
            .unwrap()
    };
    let j = by_type("application/json");
    assert_eq!(j["data"], json!({"n": 1}));
    assert_eq!(j["source"], APP_ID);
    assert_eq!(j["topic"], topic.as_str());
    let t = by_type("text/plain");
    assert_eq!(t["data"], "plain");
    assert_eq!(
        t["tenantid"], "acme",
        "entry metadata applies to its own entry"
    );
    assert!(j.get("tenantid").is_none(), "and only to it");
    let b = by_type("application/octet-stream");
    assert_eq!(b["data_base64"], "AAEC/w==");
    let ids: std::collections::HashSet<_> = got.iter().map(|e| e["id"].to_string()).collect();
    assert_eq!(ids.len(), 3, "distinct CloudEvent ids");
    for m in rec.deliveries() {
        assert_eq!(m.metadata.get("shared").map(String::as_str), Some("yes"));
    }
}

#[tokio::test]
async fn stable_route_put_and_entry_id_spelling() {
    let h = Harness::plain();
    let topic = format!("{}/sub", unique("bulk"));
    let (rec, _sub) = h.listen(&topic).await;
    let body = json!([
        {"entryID": "a", "event": "x", "contentType": "text/plain"},
        {"entryId": "b", "event": "y", "contentType": "text/plain"},
    ]);
    let r = h
        .send(request(
            "PUT",
            &format!("/v1.0/publish/bulk/ps/{topic}"),
            Some("application/json"),
            body.to_string(),
        ))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    rec.wait_for("two events", |r| r.distinct() == 2).await;
}

#[tokio::test]
async fn raw_payload_entries_go_untouched() {
    let h = Harness::plain();
    let topic = unique("bulkraw");
    let (rec, _sub) = h.listen(&topic).await;
    let body = json!([
        {"entryId": "1", "event": {"k": "v"}, "contentType": "application/json",
         "metadata": {"rawPayload": "true"}},
    ]);
    let r = post(&h, &format!("/v1.0-alpha1/publish/bulk/ps/{topic}"), &body).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    rec.wait_for("one event", |r| r.distinct() == 1).await;
    let got = events(&rec);
    assert_eq!(got[0], json!({"k": "v"}));
}

#[tokio::test]
async fn malformed_requests_are_400_and_publish_nothing() {
    let h = Harness::plain();
    let topic = unique("bad");
    let (rec, _sub) = h.listen(&topic).await;
    let path = format!("/v1.0-alpha1/publish/bulk/ps/{topic}");
    let cases = [
        json!([{"entryId": "1", "event": "x", "contentType": "text/plain"},
               {"entryId": "1", "event": "y", "contentType": "text/plain"}]),
        json!([{"event": "x", "contentType": "text/plain"}]),
        json!([{"entryId": "", "event": "x", "contentType": "text/plain"}]),
        json!({"entryId": "1"}),
        json!([{"entryId": "1", "event": 5, "contentType": "application/octet-stream"}]),
    ];
    for body in cases {
        let r = post(&h, &path, &body).await;
        r.assert_error(StatusCode::BAD_REQUEST, "ERR_PUBSUB_EVENTS_SER");
    }
    let r = h
        .send(request("POST", &path, Some("application/json"), "not json"))
        .await;
    r.assert_error(StatusCode::BAD_REQUEST, "ERR_PUBSUB_EVENTS_SER");
    // One good request afterwards proves the bus works and nothing else came.
    let ok = json!([{"entryId": "z", "event": "ok", "contentType": "text/plain"}]);
    assert_eq!(post(&h, &path, &ok).await.status, StatusCode::NO_CONTENT);
    rec.wait_for("the good event", |r| r.distinct() >= 1).await;
    assert_eq!(
        rec.deliveries().len(),
        1,
        "no event of a refused request was published"
    );
}

#[tokio::test]
async fn request_checks_come_first() {
    let h = Harness::with(settings(), &[("publishingScopes", "checkout=allowed")]);
    let body = json!([{"entryId": "1", "event": "x", "contentType": "text/plain"}]);
    let r = post(&h, "/v1.0-alpha1/publish/bulk/nope/t", &body).await;
    r.assert_error(StatusCode::NOT_FOUND, "ERR_PUBSUB_NOT_FOUND");
    let r = h
        .send(request(
            "POST",
            "/v1.0-alpha1/publish/bulk/nope/t",
            None,
            "junk",
        ))
        .await;
    r.assert_error(StatusCode::NOT_FOUND, "ERR_PUBSUB_NOT_FOUND");
    let r = post(&h, "/v1.0-alpha1/publish/bulk/ps/", &body).await;
    r.assert_error(StatusCode::NOT_FOUND, "ERR_TOPIC_NAME_EMPTY");
    let r = post(&h, "/v1.0-alpha1/publish/bulk/ps/secret", &body).await;
    r.assert_error(StatusCode::FORBIDDEN, "ERR_PUBSUB_FORBIDDEN");
    let r = post(
        &h,
        "/v1.0-alpha1/publish/bulk/ps/t?metadata.rawPayload=maybe",
        &body,
    )
    .await;
    r.assert_error(StatusCode::FORBIDDEN, "ERR_PUBSUB_FORBIDDEN");
    let r = post(
        &h,
        "/v1.0-alpha1/publish/bulk/ps/allowed?metadata.rawPayload=maybe",
        &body,
    )
    .await;
    r.assert_error(StatusCode::BAD_REQUEST, "ERR_PUBSUB_REQUEST_METADATA");
}

#[tokio::test]
async fn failed_entries_are_reported_exactly() {
    let h = Harness::with_bus(settings(), &[], Flaky::new(Vec::new()));
    let topic = unique("flaky");
    let (rec, _sub) = h.listen(&topic).await;
    let body = json!([
        {"entryId": "ok-1", "event": "a", "contentType": "text/plain"},
        {"entryId": "bad-1", "event": "b", "contentType": "text/plain", "metadata": {"fail": "yes"}},
        {"entryId": "ok-2", "event": "c", "contentType": "text/plain"},
        {"entryId": "bad-2", "event": "d", "contentType": "text/plain", "metadata": {"fail": "yes"}},
    ]);
    let r = post(&h, &format!("/v1.0-alpha1/publish/bulk/ps/{topic}"), &body).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let got = r.json();
    assert_eq!(got["errorCode"], "ERR_PUBSUB_PUBLISH_MESSAGE");
    let failed = got["failedEntries"].as_array().unwrap();
    let ids: Vec<&str> = failed
        .iter()
        .map(|f| f["entryId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["bad-1", "bad-2"]);
    assert!(failed[0]["error"].as_str().unwrap().contains("refused"));
    rec.wait_for("the accepted entries", |r| r.distinct() == 2)
        .await;
    let data: Vec<Value> = events(&rec).iter().map(|e| e["data"].clone()).collect();
    assert!(
        data.contains(&json!("a")) && data.contains(&json!("c")),
        "{data:?}"
    );

    // Every entry failing is a 500 naming all of them.
    let all_bad = json!([
        {"entryId": "x", "event": "b", "contentType": "text/plain"},
        {"entryId": "y", "event": "b", "contentType": "text/plain"},
    ]);
    let r = post(
        &h,
        &format!("/v1.0-alpha1/publish/bulk/ps/{topic}?metadata.fail=yes"),
        &all_bad,
    )
    .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.json()["failedEntries"].as_array().unwrap().len(), 2);
}

/// Counts publishes in flight at once; each publish yields a few times so
/// concurrent calls overlap.
#[derive(Default)]
struct Probe {
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    total: AtomicUsize,
}

#[async_trait::async_trait]
impl PubSub for Probe {
    fn features(&self) -> &[sidebus::broker::Feature] {
        &[]
    }
    async fn publish(&self, _req: PublishRequest) -> Result<(), BrokerError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.total.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    async fn subscribe(
        &self,
        _req: SubscribeRequest,
        _handler: Arc<dyn Handler>,
    ) -> Result<Subscription, BrokerError> {
        Err(BrokerError::Rejected("publish only".into()))
    }
    async fn ping(&self) -> Result<(), BrokerError> {
        Ok(())
    }
    async fn close(&self) -> Result<(), BrokerError> {
        Ok(())
    }
}

#[tokio::test]
async fn fan_out_without_native_bulk_is_bounded_to_100() {
    let probe = Arc::new(Probe::default());
    let h = Harness::with_bus(settings(), &[], probe.clone());
    let entries: Vec<Value> = (0..250)
        .map(|i| json!({"entryId": i.to_string(), "event": "x", "contentType": "text/plain"}))
        .collect();
    let r = post(
        &h,
        "/v1.0-alpha1/publish/bulk/ps/many",
        &Value::Array(entries),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(probe.total.load(Ordering::SeqCst), 250);
    let peak = probe.peak.load(Ordering::SeqCst);
    assert!(peak > 1, "entries do go out concurrently (peak {peak})");
    assert!(peak <= 100, "at most 100 in flight (peak {peak})");
}
