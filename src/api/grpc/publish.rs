//! `PublishEvent`, `BulkPublishEvent` and `BulkPublishEventAlpha1`: the gRPC
//! face of the transport-neutral publish path (`runtime::publish`).
//!
//! Unlike daprd, a bulk publish with failed entries answers OK with those
//! entries in `failedEntries`: daprd turns any failure into an `Internal`
//! status and the list is lost, so a client cannot tell which entries to
//! send again. Request-level problems (unknown pubsub, empty or duplicate
//! entry id, …) are still error statuses and then nothing was published.

use std::collections::HashMap;

use bytes::Bytes;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::api::error::ApiError;
use crate::broker::Metadata;
use crate::proto::{
    BulkPublishRequest, BulkPublishResponse, BulkPublishResponseFailedEntry, PublishEventRequest,
};
use crate::runtime::publish::{BulkEntry, PublishCall};
use crate::runtime::Runtime;

/// Content type of gRPC events that name none (daprd's default).
const DEFAULT_CONTENT_TYPE: &str = "text/plain";

fn to_metadata(map: HashMap<String, String>) -> Metadata {
    map.into_iter().collect()
}

fn header<'a>(md: &'a MetadataMap, key: &str) -> Option<&'a str> {
    md.get(key).and_then(|v| v.to_str().ok())
}

fn content_type(given: &str) -> &str {
    if given.is_empty() {
        DEFAULT_CONTENT_TYPE
    } else {
        given
    }
}

/// A raw payload has no envelope to carry the trace, so daprd's gRPC edge
/// puts it in the request metadata (which brokers such as Kafka turn into
/// headers). Keys the caller set win.
fn add_raw_trace(md: &mut Metadata, traceparent: Option<&str>, tracestate: Option<&str>) {
    let raw = md
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("rawPayload"))
        .and_then(|(_, v)| crate::envelope::parse_bool(v))
        .unwrap_or(false);
    if !raw {
        return;
    }
    if let Some(tp) = traceparent {
        md.entry("traceid".into()).or_insert_with(|| tp.to_string());
    }
    if let Some(ts) = tracestate {
        md.entry("tracestate".into())
            .or_insert_with(|| ts.to_string());
    }
}

/// `PublishEvent`.
pub(super) async fn publish_event(
    rt: &Runtime,
    req: Request<PublishEventRequest>,
) -> Result<Response<()>, Status> {
    let (md, _, body) = req.into_parts();
    let traceparent = header(&md, "traceparent");
    let tracestate = header(&md, "tracestate");
    let mut metadata = to_metadata(body.metadata);
    add_raw_trace(&mut metadata, traceparent, tracestate);
    let call = PublishCall {
        pubsub_name: &body.pubsub_name,
        topic: &body.topic,
        data: Bytes::from(body.data),
        content_type: Some(content_type(&body.data_content_type)),
        metadata,
        traceparent,
        tracestate,
    };
    let receipt = rt.publish(call).await.map_err(ApiError::from)?;
    let mut resp = Response::new(());
    if receipt.buffered {
        resp.metadata_mut().insert(
            crate::api::OUTBOX_HEADER,
            tonic::metadata::MetadataValue::from_static(crate::api::OUTBOX_BUFFERED),
        );
    }
    Ok(resp)
}

/// `BulkPublishEvent` and its alpha name.
pub(super) async fn bulk_publish(
    rt: &Runtime,
    req: Request<BulkPublishRequest>,
) -> Result<Response<BulkPublishResponse>, Status> {
    let (md, _, body) = req.into_parts();
    let entries = body
        .entries
        .into_iter()
        .map(|e| BulkEntry {
            content_type: content_type(&e.content_type).to_string(),
            entry_id: e.entry_id,
            event: Bytes::from(e.event),
            metadata: to_metadata(e.metadata),
        })
        .collect();
    let failures = rt
        .publish_bulk(
            &body.pubsub_name,
            &body.topic,
            to_metadata(body.metadata),
            entries,
            header(&md, "traceparent"),
            header(&md, "tracestate"),
        )
        .await
        .map_err(ApiError::from)?;
    let failed_entries = failures
        .into_iter()
        .map(|f| BulkPublishResponseFailedEntry {
            entry_id: f.entry_id,
            error: f.error,
        })
        .collect();
    Ok(Response::new(BulkPublishResponse { failed_entries }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_payload_carries_the_trace_in_metadata() {
        let mut md: Metadata = [("rawPayload".to_string(), "true".to_string())].into();
        add_raw_trace(&mut md, Some("00-abc-def-01"), Some("k=v"));
        assert_eq!(md.get("traceid").map(String::as_str), Some("00-abc-def-01"));
        assert_eq!(md.get("tracestate").map(String::as_str), Some("k=v"));

        let mut enveloped = Metadata::new();
        add_raw_trace(&mut enveloped, Some("00-abc-def-01"), None);
        assert!(
            enveloped.is_empty(),
            "the envelope carries the trace instead"
        );
    }
}
