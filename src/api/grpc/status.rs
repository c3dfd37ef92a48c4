//! [`ApiError`] → `tonic::Status`: daprd's gRPC code and message, with a
//! `google.rpc.Status` in `grpc-status-details-bin` carrying the ErrorInfo
//! (reason, domain `dapr.io`, metadata) and, for errors about one pub/sub,
//! the ResourceInfo — the same details the HTTP edge renders as JSON.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::api::error::{ApiError, ERROR_DOMAIN};

/// The gRPC status daprd answers `err` with.
pub fn to_status(err: &ApiError) -> Status {
    let mut details = ErrorDetails::new();
    let metadata: HashMap<String, String> = err.error_info_metadata().into_iter().collect();
    details.set_error_info(err.reason(), ERROR_DOMAIN, metadata);
    if let Some(res) = err.resource_info() {
        details.set_resource_info(
            res.resource_type,
            res.resource_name,
            res.owner,
            res.description,
        );
    }
    let code = Code::from_i32(err.grpc_code());
    if matches!(code, Code::Internal | Code::Unavailable) {
        tracing::warn!(code = err.error_code(), error = %err, "gRPC API request failed.");
    } else {
        tracing::debug!(code = err.error_code(), error = %err, "gRPC API request refused.");
    }
    Status::with_error_details(code, err.to_string(), details)
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Self {
        to_status(&err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_error_has_code_reason_and_resource() {
        let err = ApiError::from(crate::runtime::PublishError::Broker {
            pubsub: "ps".into(),
            topic: "orders".into(),
            error: "boom".into(),
        });
        let status = to_status(&err);
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(
            status.message(),
            "error when publishing to topic orders in pubsub ps: boom"
        );
        let details = status.get_error_details();
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "DAPR_PUBSUB_PUBLISH_MESSAGE");
        assert_eq!(info.domain, "dapr.io");
        assert_eq!(
            info.metadata.get("topic").map(String::as_str),
            Some("orders")
        );
        let res = details.resource_info().expect("ResourceInfo");
        assert_eq!(res.resource_type, "pubsub");
        assert_eq!(res.resource_name, "ps");
    }

    #[test]
    fn not_found_is_invalid_argument_without_resource_info() {
        let status = to_status(&ApiError::from(
            crate::runtime::PublishError::PubsubNotFound("x".into()),
        ));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        assert_eq!(
            details.error_info().map(|i| i.reason.as_str()),
            Some("DAPR_PUBSUB_NOT_FOUND")
        );
        assert!(details.resource_info().is_none());
    }
}
