//! `POST|PUT /v1.0/publish/{pubsubname}/{topic...}`: one event, 204 once the
//! broker has it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, StatusCode};

use super::{read_body, split_pubsub_topic};
use crate::api::error::ApiError;
use crate::api::{OUTBOX_BUFFERED, OUTBOX_HEADER};
use crate::broker::Metadata;
use crate::runtime::publish::PublishCall;
use crate::runtime::Runtime;

/// Prefix of query parameters that become request metadata.
const METADATA_PREFIX: &str = "metadata.";

/// `metadata.<key>=<value>` query parameters as metadata; the first value of
/// a repeated key wins, other parameters are ignored (daprd's rules).
pub(super) fn query_metadata(query: Vec<(String, String)>) -> Metadata {
    let mut md = Metadata::new();
    for (k, v) in query {
        if let Some(key) = k.strip_prefix(METADATA_PREFIX) {
            md.entry(key.to_string()).or_insert(v);
        }
    }
    md
}

/// A header as text, ignoring values that are not visible ASCII.
pub(super) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

pub(super) async fn publish(
    State(rt): State<Arc<Runtime>>,
    rest: Option<Path<String>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let rest = rest.map(|Path(r)| r).unwrap_or_default();
    let (pubsub_name, topic) = split_pubsub_topic(&rest);
    // Refuse a request that cannot succeed before reading its body.
    rt.check_publish(pubsub_name, topic)?;
    let data = read_body(body, rt.settings.max_body_size).await?;
    let receipt = rt
        .publish(PublishCall {
            pubsub_name,
            topic,
            data,
            content_type: header_str(&headers, header::CONTENT_TYPE.as_str()),
            metadata: query_metadata(query),
            traceparent: header_str(&headers, "traceparent"),
            tracestate: header_str(&headers, "tracestate"),
        })
        .await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if receipt.buffered {
        resp.headers_mut().insert(
            OUTBOX_HEADER,
            axum::http::HeaderValue::from_static(OUTBOX_BUFFERED),
        );
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_prefixed_params_and_first_value_count() {
        let md = query_metadata(vec![
            ("metadata.rawPayload".into(), "true".into()),
            ("metadata.rawPayload".into(), "false".into()),
            ("other".into(), "x".into()),
            ("metadata.cloudevent.tenantid".into(), "t1".into()),
        ]);
        assert_eq!(md.len(), 2);
        assert_eq!(md["rawPayload"], "true");
        assert_eq!(md["cloudevent.tenantid"], "t1");
    }
}
