//! `POST|PUT /v1.0-alpha1/publish/bulk/{pubsubname}/{topic...}` (and the
//! stable `/v1.0/publish/bulk/...`): a JSON array of entries, each wrapped in
//! its own envelope. 204 when every entry was accepted; otherwise 500 naming
//! exactly the failed entries, so nothing accepted is hidden and nothing
//! failed is reported as sent.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use super::publish::{header_str, query_metadata};
use super::{read_body, split_pubsub_topic};
use crate::api::error::ApiError;
use crate::broker::Metadata;
use crate::envelope::{bulk_entry_bytes, EnvelopeError};
use crate::runtime::publish::{BulkEntry, BulkFailure};
use crate::runtime::{PublishError, Runtime};

/// A field of an entry object, matched case-insensitively as Go's
/// `encoding/json` does (so `entryId`, `entryID` and `EntryId` all work).
fn field<'v>(obj: &'v serde_json::Map<String, Value>, name: &str) -> Option<&'v Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// Turns one JSON entry into a [`BulkEntry`], converting its event by its
/// content type.
fn parse_entry(index: usize, raw: &Value) -> Result<BulkEntry, ApiError> {
    let bad =
        |why: String| ApiError::from(PublishError::BadBulkEvents(format!("entry {index}: {why}")));
    let obj = raw
        .as_object()
        .ok_or_else(|| bad("an entry must be a JSON object".into()))?;
    let text = |name: &str| -> Result<String, ApiError> {
        match field(obj, name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(bad(format!("{name} must be a string"))),
        }
    };
    let entry_id = text("entryId")?;
    if entry_id.is_empty() {
        return Err(bad("entryId is required".into()));
    }
    let content_type = text("contentType")?;
    let event = field(obj, "event").unwrap_or(&Value::Null);
    let event = bulk_entry_bytes(event, &content_type).map_err(|err| match err {
        EnvelopeError::BadBulkEvent(why) => bad(format!("entryId {entry_id}: {why}")),
        other => bad(format!("entryId {entry_id}: {other}")),
    })?;
    let metadata = match field(obj, "metadata") {
        None | Some(Value::Null) => Metadata::new(),
        Some(Value::Object(md)) => md
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(bad(format!("metadata value of {k} must be a string"))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad("metadata must be an object of strings".into())),
    };
    Ok(BulkEntry {
        entry_id,
        event,
        content_type,
        metadata,
    })
}

/// Parses the whole array; any malformed entry refuses the whole request.
fn parse_entries(body: &[u8]) -> Result<Vec<BulkEntry>, ApiError> {
    let raw: Vec<Value> = serde_json::from_slice(body).map_err(|err| {
        ApiError::from(PublishError::BadBulkEvents(format!(
            "the body must be a JSON array of bulk entries: {err}"
        )))
    })?;
    raw.iter()
        .enumerate()
        .map(|(i, entry)| parse_entry(i, entry))
        .collect()
}

/// daprd's answer when some entries failed.
fn failed_response(failures: &[BulkFailure]) -> Response {
    let failed: Vec<Value> = failures
        .iter()
        .map(|f| json!({"entryId": f.entry_id, "error": f.error}))
        .collect();
    let body = json!({
        "failedEntries": failed,
        "errorCode": "ERR_PUBSUB_PUBLISH_MESSAGE",
    });
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}

pub(super) async fn bulk_publish(
    State(rt): State<Arc<Runtime>>,
    rest: Option<Path<String>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let rest = rest.map(|Path(r)| r).unwrap_or_default();
    let (pubsub_name, topic) = split_pubsub_topic(&rest);
    // daprd refuses an unknown pubsub or topic before looking at the body.
    rt.check_publish(pubsub_name, topic)?;
    let body = read_body(body, rt.settings.max_body_size).await?;
    let entries = parse_entries(&body)?;
    let failures = rt
        .publish_bulk(
            pubsub_name,
            topic,
            query_metadata(query),
            entries,
            header_str(&headers, "traceparent"),
            header_str(&headers, "tracestate"),
        )
        .await?;
    if failures.is_empty() {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Ok(failed_response(&failures))
    }
}
