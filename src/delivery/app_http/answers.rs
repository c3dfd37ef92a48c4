//! How the app's HTTP answers map to results, as daprd maps them (the table
//! is in `docs/delivery.md`), and the bulk request body.

use base64::Engine as _;
use bytes::Bytes;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::delivery::channel::{AppResult, BulkAppRequest};

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    status: String,
}

/// Maps the answer to a single-event delivery.
pub(crate) fn map_answer(status: StatusCode, body: Option<&[u8]>) -> AppResult {
    if status.is_success() {
        let parsed = body
            .filter(|b| !b.is_empty())
            .and_then(|b| serde_json::from_slice::<Answer>(b).ok());
        return match parsed.as_ref().map(|a| a.status.as_str()) {
            None | Some("") | Some("SUCCESS") => AppResult::Success,
            Some("DROP") => AppResult::Drop("app answered DROP".into()),
            Some("RETRY") => AppResult::Retry("app answered RETRY".into()),
            Some(other) => AppResult::Retry(format!("unknown status {other:?}")),
        };
    }
    if status == StatusCode::NOT_FOUND {
        return AppResult::Drop("app answered 404 Not Found".into());
    }
    AppResult::Retry(format!("app answered HTTP {}", status.as_u16()))
}

#[derive(Deserialize)]
struct BulkAnswer {
    statuses: Vec<BulkStatus>,
}

#[derive(Deserialize)]
struct BulkStatus {
    #[serde(rename = "entryId", default)]
    entry_id: String,
    #[serde(default)]
    status: String,
}

/// Maps a bulk answer (`{"statuses":[{entryId, status}]}`) to one result per
/// entry id.
pub(crate) fn map_bulk_answer(
    ids: &[String],
    status: StatusCode,
    body: Option<&[u8]>,
) -> Vec<(String, AppResult)> {
    let all = |r: AppResult| ids.iter().map(|id| (id.clone(), r.clone())).collect();
    if status == StatusCode::NOT_FOUND {
        return all(AppResult::Drop("app answered 404 Not Found".into()));
    }
    if !status.is_success() {
        return all(AppResult::Retry(format!(
            "app answered HTTP {}",
            status.as_u16()
        )));
    }
    let Some(answer) = body.and_then(|b| serde_json::from_slice::<BulkAnswer>(b).ok()) else {
        return all(AppResult::Retry("unparseable bulk answer".into()));
    };
    ids.iter()
        .map(|id| {
            let found = answer.statuses.iter().find(|s| &s.entry_id == id);
            let result = match found.map(|s| s.status.as_str()) {
                Some("SUCCESS") => AppResult::Success,
                Some("DROP") => AppResult::Drop("app answered DROP".into()),
                Some("RETRY") => AppResult::Retry("app answered RETRY".into()),
                None | Some("") => AppResult::Retry("no status for entry".into()),
                Some(other) => AppResult::Retry(format!("unknown status {other:?}")),
            };
            (id.clone(), result)
        })
        .collect()
}

#[derive(Serialize)]
struct BulkBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    topic: &'a str,
    pubsubname: &'a str,
    metadata: &'a crate::broker::Metadata,
    entries: Vec<BulkBodyEntry<'a>>,
}

#[derive(Serialize)]
struct BulkBodyEntry<'a> {
    #[serde(rename = "entryId")]
    entry_id: &'a str,
    event: serde_json::Value,
    metadata: &'a crate::broker::Metadata,
    #[serde(rename = "contentType")]
    content_type: &'static str,
}

/// The bulk delivery request body daprd sends (`type`
/// `com.dapr.event.sent.bulk`, one entry per event).
pub(crate) fn bulk_body(req: &BulkAppRequest) -> Result<Bytes, serde_json::Error> {
    let mut entries = Vec::with_capacity(req.entries.len());
    for e in &req.entries {
        let (event, content_type) = match &e.raw_data {
            Some(raw) => (
                serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(raw)),
                "application/octet-stream",
            ),
            None => (
                serde_json::from_slice(&e.event.body)?,
                "application/cloudevents+json",
            ),
        };
        entries.push(BulkBodyEntry {
            entry_id: &e.entry_id,
            event,
            metadata: &e.event.metadata,
            content_type,
        });
    }
    let body = BulkBody {
        id: &req.id,
        kind: "com.dapr.event.sent.bulk",
        topic: &req.topic,
        pubsubname: &req.pubsub_name,
        metadata: &req.metadata,
        entries,
    };
    serde_json::to_vec(&body).map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(status: u16, body: &str) -> AppResult {
        map_answer(StatusCode::from_u16(status).unwrap(), Some(body.as_bytes()))
    }

    #[test]
    fn single_answers_map_as_daprd() {
        for (status, body) in [
            (200, ""),
            (200, "nonsense"),
            (200, r#"{"status":"SUCCESS"}"#),
            (200, r#"{"status":""}"#),
            (200, "{}"),
            (200, r#"{"status":5}"#),
            (201, r#"{"status":"SUCCESS"}"#),
        ] {
            assert_eq!(single(status, body), AppResult::Success, "{status} {body}");
        }
        assert!(matches!(
            map_answer(StatusCode::OK, None),
            AppResult::Success
        ));
        for (status, body) in [
            (200, r#"{"status":"RETRY"}"#),
            (200, r#"{"status":"success"}"#),
            (200, r#"{"status":"drop"}"#),
            (500, ""),
            (429, r#"{"status":"SUCCESS"}"#),
            (302, ""),
        ] {
            assert!(
                matches!(single(status, body), AppResult::Retry(_)),
                "{status} {body}"
            );
        }
        for (status, body) in [
            (200, r#"{"status":"DROP"}"#),
            (404, ""),
            (404, r#"{"status":"RETRY"}"#),
        ] {
            assert!(
                matches!(single(status, body), AppResult::Drop(_)),
                "{status} {body}"
            );
        }
    }

    #[test]
    fn bulk_answers_map_per_entry() {
        let ids: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let body =
            br#"{"statuses":[{"entryId":"a","status":"SUCCESS"},{"entryId":"b","status":"DROP"},
            {"entryId":"c","status":"RETRY"},{"entryId":"d","status":""}]}"#;
        let got = map_bulk_answer(&ids, StatusCode::OK, Some(body));
        let kinds: Vec<&str> = got
            .iter()
            .map(|(_, r)| match r {
                AppResult::Success => "S",
                AppResult::Drop(_) => "D",
                AppResult::Retry(_) => "R",
            })
            .collect();
        assert_eq!(kinds, ["S", "D", "R", "R", "R"]);
        let all = |status: u16, body: &[u8]| {
            map_bulk_answer(&ids, StatusCode::from_u16(status).unwrap(), Some(body))
                .into_iter()
                .map(|(_, r)| r)
                .collect::<Vec<_>>()
        };
        assert!(all(200, b"garbage")
            .iter()
            .all(|r| matches!(r, AppResult::Retry(_))));
        assert!(all(404, b"")
            .iter()
            .all(|r| matches!(r, AppResult::Drop(_))));
        assert!(all(500, br#"{"statuses":[]}"#)
            .iter()
            .all(|r| matches!(r, AppResult::Retry(_))));
    }
}
