//! Republishing an event to its subscription's dead-letter topic.
//!
//! The dead letter is the original broker bytes and metadata, so a consumer
//! of the dead-letter topic sees exactly what the app would have seen, plus
//! headers that say why it ended there.

use crate::broker::{PublishRequest, ReceivedMessage};

/// Why an event was dead-lettered (`deadLetterReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The bytes are not a CloudEvent.
    Undecodable,
    /// The event's `expiration` has passed.
    Expired,
    /// No routing rule matched, or a rule failed to evaluate.
    NoRoute,
    /// The app answered DROP or 404.
    Dropped,
    /// The retry budget is spent.
    RetriesExhausted,
}

impl Reason {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Undecodable => "undecodable",
            Reason::Expired => "expired",
            Reason::NoRoute => "no-route",
            Reason::Dropped => "dropped",
            Reason::RetriesExhausted => "retries-exhausted",
        }
    }
}

/// Builds the dead letter of `msg`.
pub fn letter(
    msg: &ReceivedMessage,
    dead_letter_topic: &str,
    content_type: &str,
    reason: Reason,
    attempts: u32,
    error: &str,
) -> PublishRequest {
    let mut metadata = msg.metadata.clone();
    metadata.insert("deadLetterReason".into(), reason.as_str().into());
    metadata.insert("deadLetterAttempts".into(), attempts.to_string());
    metadata.insert("deadLetterSourceTopic".into(), msg.topic.clone());
    metadata.insert("deadLetterError".into(), error.to_string());
    PublishRequest {
        topic: dead_letter_topic.to_string(),
        data: msg.data.clone(),
        content_type: content_type.to_string(),
        metadata,
        key: msg.key.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn keeps_original_bytes_metadata_and_key_and_adds_headers() {
        let msg = ReceivedMessage {
            topic: "orders".into(),
            data: Bytes::from_static(b"{\"id\":\"1\"}"),
            metadata: [("x-user".to_string(), "u".to_string())].into(),
            key: Some("k".into()),
            partition: None,
            redeliveries: 0,
        };
        let req = letter(
            &msg,
            "poison",
            "application/cloudevents+json",
            Reason::Dropped,
            3,
            "DROP",
        );
        assert_eq!(req.topic, "poison");
        assert_eq!(req.data, msg.data);
        assert_eq!(req.key.as_deref(), Some("k"));
        assert_eq!(req.metadata["x-user"], "u");
        assert_eq!(req.metadata["deadLetterReason"], "dropped");
        assert_eq!(req.metadata["deadLetterAttempts"], "3");
        assert_eq!(req.metadata["deadLetterSourceTopic"], "orders");
        assert_eq!(req.metadata["deadLetterError"], "DROP");
    }
}
