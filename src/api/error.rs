//! The one place that maps sidebus errors to daprd's wire errors: HTTP
//! status, `errorCode`, google.rpc `ErrorInfo` reason, gRPC code, and the
//! JSON body daprd's `dapr/kit` errors render
//! (`{"errorCode","message","details":[ErrorInfo, ResourceInfo]}`).
//!
//! Codes and reasons are daprd's (the HTTP table is in `docs/http-api.md`). Two
//! codes are sidebus's own, because daprd has no JSON error for them:
//! `ERR_BODY_TOO_LARGE` (413, body above `--max-body-size`) and
//! `ERR_ROUTE_NOT_FOUND` (404, unknown route). A bad API token answers 401
//! with daprd's `{"error":"invalid api token"}` plus our usual fields.

use std::collections::BTreeMap;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{json, Value};

use crate::runtime::PublishError;

/// ErrorInfo `domain` of every error.
pub const ERROR_DOMAIN: &str = "dapr.io";

/// The fields of a google.rpc `ResourceInfo` detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// Always `pubsub` here.
    pub resource_type: &'static str,
    /// The pub/sub component name.
    pub resource_name: String,
    /// Always empty, as daprd sends it.
    pub owner: String,
    /// The error message.
    pub description: String,
}

/// gRPC status codes (numeric `tonic::Code`), kept here so the mapping stays
/// in this file without a tonic dependency in the HTTP edge.
mod grpc {
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const NOT_FOUND: i32 = 5;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
    pub const UNAUTHENTICATED: i32 = 16;
}

/// Every error the API edges answer with. `Display` is daprd's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The publish path refused or failed the request (request checks,
    /// envelope, component): the runtime's own error, rendered here.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The request body is larger than `--max-body-size`.
    #[error("request body is larger than the limit of {limit} bytes (--max-body-size)")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// `DAPR_API_TOKEN` is set and the request's `dapr-api-token` is missing
    /// or different.
    #[error("invalid api token")]
    Unauthorized,
    /// The sidecar is not fully initialized yet.
    #[error("dapr is not ready: {0}")]
    HealthNotReady(String),
    /// Components are not initialized yet.
    #[error("dapr outbound is not ready: {0}")]
    OutboundNotReady(String),
    /// `GET /v1.0/healthz?appid=x` names another app.
    #[error("dapr app-id does not match")]
    AppIdMismatch,
    /// The request body could not be read or parsed.
    #[error("failed deserializing HTTP body: {0}")]
    MalformedRequest(String),
    /// No route matches the request.
    #[error("{method} {path} is not a sidebus API route")]
    RouteNotFound {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
    /// The route exists, but not for this method.
    #[error("this method is not allowed on this route; the Allow header lists those that are")]
    MethodNotAllowed,
    /// An extended metadata attribute over its bounds (count, key or value size).
    #[error("{0}")]
    MetadataLimit(String),
    /// The path or query could not be decoded (bad percent-encoding, …).
    #[error("the request path or query could not be decoded")]
    MalformedUrl,
}

impl ApiError {
    /// daprd's HTTP status for this error.
    pub fn http_status(&self) -> StatusCode {
        use PublishError as P;
        match self {
            ApiError::Publish(err) => match err {
                P::NotConfigured
                | P::BadMetadata { .. }
                | P::BadTopic { .. }
                | P::BadBulkEvents(_) => StatusCode::BAD_REQUEST,
                P::PubsubEmpty | P::PubsubNotFound(_) | P::TopicEmpty { .. } => {
                    StatusCode::NOT_FOUND
                }
                P::Forbidden { .. } => StatusCode::FORBIDDEN,
                P::CloudEvent { .. } | P::Broker { .. } => StatusCode::INTERNAL_SERVER_ERROR,
                P::OutboxFull { .. } | P::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            },
            ApiError::MalformedRequest(_) | ApiError::MalformedUrl | ApiError::MetadataLimit(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::HealthNotReady(_)
            | ApiError::OutboundNotReady(_)
            | ApiError::AppIdMismatch => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
        }
    }

    /// daprd's `errorCode` string.
    pub fn error_code(&self) -> &'static str {
        use PublishError as P;
        match self {
            ApiError::Publish(err) => match err {
                P::NotConfigured => "ERR_PUBSUB_NOT_CONFIGURED",
                P::PubsubEmpty => "ERR_PUBSUB_EMPTY",
                P::PubsubNotFound(_) => "ERR_PUBSUB_NOT_FOUND",
                P::TopicEmpty { .. } => "ERR_TOPIC_NAME_EMPTY",
                P::BadMetadata { .. } => "ERR_PUBSUB_REQUEST_METADATA",
                P::BadTopic { .. } => "ERR_PUBSUB_TOPIC_INVALID",
                P::CloudEvent { .. } => "ERR_PUBSUB_CLOUD_EVENTS_SER",
                P::Forbidden { .. } => "ERR_PUBSUB_FORBIDDEN",
                P::Broker { .. } => "ERR_PUBSUB_PUBLISH_MESSAGE",
                P::BadBulkEvents(_) => "ERR_PUBSUB_EVENTS_SER",
                P::OutboxFull { .. } => "ERR_PUBSUB_OUTBOX_FULL",
                P::Busy { .. } => "ERR_PUBSUB_PUBLISH_MESSAGE",
            },
            ApiError::BodyTooLarge { .. } => "ERR_BODY_TOO_LARGE",
            ApiError::Unauthorized => "ERR_UNAUTHORIZED",
            ApiError::HealthNotReady(_) => "ERR_HEALTH_NOT_READY",
            ApiError::OutboundNotReady(_) => "ERR_OUTBOUND_HEALTH_NOT_READY",
            ApiError::AppIdMismatch => "ERR_HEALTH_APPID_NOT_MATCH",
            ApiError::MalformedRequest(_) => "ERR_MALFORMED_REQUEST",
            ApiError::RouteNotFound { .. } => "ERR_ROUTE_NOT_FOUND",
            ApiError::MethodNotAllowed => "ERR_METHOD_NOT_ALLOWED",
            ApiError::MalformedUrl => "ERR_MALFORMED_REQUEST",
            ApiError::MetadataLimit(_) => "ERR_METADATA_LIMIT",
        }
    }

    /// The google.rpc `ErrorInfo` reason.
    pub fn reason(&self) -> &'static str {
        use PublishError as P;
        match self {
            ApiError::Publish(err) => match err {
                P::NotConfigured => "DAPR_PUBSUB_NOT_CONFIGURED",
                P::PubsubEmpty => "DAPR_PUBSUB_NAME_EMPTY",
                P::PubsubNotFound(_) => "DAPR_PUBSUB_NOT_FOUND",
                P::TopicEmpty { .. } => "DAPR_PUBSUB_TOPIC_NAME_EMPTY",
                P::BadMetadata { .. } => "DAPR_PUBSUB_METADATA_DESERIALIZATION",
                P::BadTopic { .. } => "DAPR_PUBSUB_TOPIC_INVALID",
                P::CloudEvent { .. } => "DAPR_PUBSUB_CLOUD_EVENT_CREATION",
                P::Forbidden { .. } => "DAPR_PUBSUB_FORBIDDEN",
                P::Broker { .. } => "DAPR_PUBSUB_PUBLISH_MESSAGE",
                P::BadBulkEvents(_) => "DAPR_PUBSUB_EVENTS_SER",
                P::OutboxFull { .. } => "DAPR_PUBSUB_OUTBOX_FULL",
                P::Busy { .. } => "DAPR_PUBSUB_PUBLISH_MESSAGE",
            },
            ApiError::BodyTooLarge { .. } => "DAPR_BODY_TOO_LARGE",
            ApiError::Unauthorized => "DAPR_API_TOKEN_INVALID",
            ApiError::HealthNotReady(_) => "DAPR_HEALTH_NOT_READY",
            ApiError::OutboundNotReady(_) => "DAPR_HEALTH_OUTBOUND_NOT_READY",
            ApiError::AppIdMismatch => "DAPR_HEALTH_APPID_NOT_MATCH",
            ApiError::MalformedRequest(_) => "DAPR_MALFORMED_REQUEST",
            ApiError::RouteNotFound { .. } => "DAPR_ROUTE_NOT_FOUND",
            ApiError::MethodNotAllowed => "DAPR_METHOD_NOT_ALLOWED",
            ApiError::MalformedUrl => "DAPR_MALFORMED_REQUEST",
            ApiError::MetadataLimit(_) => "DAPR_METADATA_LIMIT",
        }
    }

    /// daprd's gRPC status code (numeric `tonic::Code`).
    pub fn grpc_code(&self) -> i32 {
        use PublishError as P;
        match self {
            ApiError::Publish(err) => match err {
                P::NotConfigured => grpc::FAILED_PRECONDITION,
                P::PubsubEmpty
                | P::PubsubNotFound(_)
                | P::TopicEmpty { .. }
                | P::BadMetadata { .. }
                | P::BadTopic { .. }
                | P::CloudEvent { .. }
                | P::BadBulkEvents(_) => grpc::INVALID_ARGUMENT,
                P::Forbidden { .. } => grpc::PERMISSION_DENIED,
                P::Broker { .. } => grpc::INTERNAL,
                P::OutboxFull { .. } => grpc::RESOURCE_EXHAUSTED,
                P::Busy { .. } => grpc::UNAVAILABLE,
            },
            ApiError::MalformedRequest(_) | ApiError::AppIdMismatch => grpc::INVALID_ARGUMENT,
            ApiError::BodyTooLarge { .. } => grpc::RESOURCE_EXHAUSTED,
            ApiError::Unauthorized => grpc::UNAUTHENTICATED,
            ApiError::HealthNotReady(_) | ApiError::OutboundNotReady(_) => grpc::UNAVAILABLE,
            ApiError::RouteNotFound { .. } => grpc::NOT_FOUND,
            ApiError::MethodNotAllowed => grpc::UNIMPLEMENTED,
            ApiError::MalformedUrl => grpc::INVALID_ARGUMENT,
            ApiError::MetadataLimit(_) => grpc::RESOURCE_EXHAUSTED,
        }
    }

    /// The pub/sub component and topic the error is about, when it is about
    /// one (ResourceInfo and ErrorInfo metadata come from these).
    fn resource(&self) -> Option<(&str, Option<&str>)> {
        use PublishError as P;
        let ApiError::Publish(err) = self else {
            return None;
        };
        match err {
            P::TopicEmpty { pubsub } => Some((pubsub, None)),
            P::BadMetadata { pubsub, topic, .. }
            | P::BadTopic { pubsub, topic, .. }
            | P::CloudEvent { pubsub, topic, .. }
            | P::Forbidden { pubsub, topic, .. }
            | P::Broker { pubsub, topic, .. }
            | P::OutboxFull { pubsub, topic, .. }
            | P::Busy { pubsub, topic, .. } => Some((pubsub, Some(topic))),
            _ => None,
        }
    }

    /// ErrorInfo metadata: the topic and, for failures with a cause, the
    /// cause (daprd's `{"topic","error"}`), plus the app id for scope errors.
    pub fn error_info_metadata(&self) -> BTreeMap<String, String> {
        let mut md = BTreeMap::new();
        if let Some((_, Some(topic))) = self.resource() {
            md.insert("topic".into(), topic.to_string());
        }
        use PublishError as P;
        match self {
            ApiError::Publish(P::PubsubNotFound(name)) => {
                md.insert("pubsub".into(), name.clone());
            }
            ApiError::Publish(
                P::Broker { error, .. }
                | P::CloudEvent { error, .. }
                | P::OutboxFull { error, .. }
                | P::Busy { error, .. },
            ) => {
                md.insert("error".into(), error.clone());
            }
            ApiError::Publish(P::BadMetadata { key, value, .. }) => {
                md.insert("key".into(), key.clone());
                md.insert("value".into(), value.clone());
            }
            ApiError::Publish(P::Forbidden { app_id, .. }) => {
                md.insert("appID".into(), app_id.clone());
            }
            ApiError::BodyTooLarge { limit } => {
                md.insert("limit".into(), limit.to_string());
            }
            _ => {}
        }
        md
    }

    /// The google.rpc `ResourceInfo` detail, for errors about one pub/sub
    /// component (daprd leaves it out for NotFound / NotConfigured).
    pub fn resource_info(&self) -> Option<ResourceInfo> {
        self.resource().map(|(pubsub, _)| ResourceInfo {
            resource_type: "pubsub",
            resource_name: pubsub.to_string(),
            owner: String::new(),
            description: self.to_string(),
        })
    }

    /// The JSON body daprd sends for this error.
    pub fn body(&self) -> Value {
        let message = self.to_string();
        let mut info = json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": self.reason(),
            "domain": ERROR_DOMAIN,
        });
        let md = self.error_info_metadata();
        // protojson (which daprd renders details with) omits empty maps.
        if !md.is_empty() {
            info["metadata"] = json!(md);
        }
        let mut details = vec![info];
        if let Some(res) = self.resource_info() {
            details.push(json!({
                "@type": "type.googleapis.com/google.rpc.ResourceInfo",
                "resource_type": res.resource_type,
                "resource_name": res.resource_name,
                "owner": res.owner,
                "description": res.description,
            }));
        }
        let mut body = json!({
            "errorCode": self.error_code(),
            "message": message,
            "details": details,
        });
        if matches!(self, ApiError::Unauthorized) {
            // daprd's token middleware answers `{"error":"invalid api token"}`;
            // keep that field for scripts that read it.
            body["error"] = Value::from(message);
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Not-ready answers are what probes and SDKs poll for during start-up;
        // they are expected, not failures worth a warning.
        let probing = matches!(
            self,
            ApiError::HealthNotReady(_) | ApiError::OutboundNotReady(_)
        );
        if probing {
            tracing::debug!(code = self.error_code(), error = %self, "Not ready yet.");
        } else if self.http_status().is_server_error() {
            tracing::warn!(code = self.error_code(), error = %self, "API request failed.");
        } else {
            tracing::debug!(code = self.error_code(), error = %self, "API request refused.");
        }
        let retry_after = match &self {
            ApiError::Publish(
                PublishError::OutboxFull {
                    retry_after_secs, ..
                }
                | PublishError::Busy {
                    retry_after_secs, ..
                },
            ) => Some(*retry_after_secs),
            _ => None,
        };
        let mut resp = (self.http_status(), axum::Json(self.body())).into_response();
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_full_is_503_with_retry_after() {
        let err = ApiError::from(PublishError::OutboxFull {
            pubsub: "ps".into(),
            topic: "orders".into(),
            error: "outbox full".into(),
            retry_after_secs: 5,
        });
        assert_eq!(err.grpc_code(), grpc::RESOURCE_EXHAUSTED);
        assert_eq!(err.error_code(), "ERR_PUBSUB_OUTBOX_FULL");
        let resp = err.into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            resp.headers()
                .get(axum::http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("5")
        );
    }

    #[test]
    fn publish_error_carries_error_info_and_resource_info() {
        let err = ApiError::from(PublishError::Broker {
            pubsub: "ps".into(),
            topic: "orders".into(),
            error: "boom".into(),
        });
        assert_eq!(err.http_status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.grpc_code(), 13);
        let body = err.body();
        assert_eq!(body["errorCode"], "ERR_PUBSUB_PUBLISH_MESSAGE");
        assert_eq!(
            body["message"],
            "error when publishing to topic orders in pubsub ps: boom"
        );
        assert_eq!(body["details"][0]["reason"], "DAPR_PUBSUB_PUBLISH_MESSAGE");
        assert_eq!(body["details"][0]["metadata"]["topic"], "orders");
        assert_eq!(body["details"][0]["metadata"]["error"], "boom");
        assert_eq!(body["details"][1]["resource_name"], "ps");
        assert_eq!(body["details"][1]["owner"], "");
    }

    #[test]
    fn not_found_and_not_configured_have_no_resource_info() {
        for err in [
            ApiError::from(PublishError::PubsubNotFound("x".into())),
            ApiError::from(PublishError::NotConfigured),
        ] {
            let details = err.body()["details"].as_array().cloned().unwrap();
            assert_eq!(details.len(), 1, "{err}");
            assert_eq!(
                details[0]["@type"],
                "type.googleapis.com/google.rpc.ErrorInfo"
            );
        }
        assert_eq!(ApiError::from(PublishError::NotConfigured).grpc_code(), 9);
        assert_eq!(
            ApiError::from(PublishError::PubsubNotFound("x".into())).grpc_code(),
            3
        );
    }

    #[test]
    fn unauthorized_keeps_daprd_error_field() {
        let body = ApiError::Unauthorized.body();
        assert_eq!(body["error"], "invalid api token");
        assert_eq!(body["errorCode"], "ERR_UNAUTHORIZED");
        assert_eq!(
            ApiError::Unauthorized.http_status(),
            StatusCode::UNAUTHORIZED
        );
    }
}
