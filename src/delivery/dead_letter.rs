//! Republishing an event to its subscription's dead-letter topic.
//!
//! The dead letter is the original broker bytes and metadata, so a consumer
//! of the dead-letter topic sees exactly what the app would have seen, plus
//! headers that say why it ended there.

use std::time::Duration;

use super::context::{Counters, SubContext};
use crate::broker::{BrokerError, Outcome, PublishRequest, ReceivedMessage};

/// Longest a dead-letter publish may take before the event goes back to the
/// broker instead (daprd uses the same 30 s bound).
const DEAD_LETTER_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Settles an event that will not (or no longer) be retried: dead-letter it
/// when the subscription of `ctx` has a topic for that, else `fallback`.
pub(crate) async fn give_up(
    ctx: &SubContext,
    msg: &ReceivedMessage,
    reason: Reason,
    attempts: u32,
    error: &str,
    fallback: Outcome,
) -> Outcome {
    let Some(dlq) = ctx.spec.dead_letter_topic.as_deref() else {
        let counter = match fallback {
            Outcome::Retry => &ctx.counters.handed_back,
            _ => &ctx.counters.dropped,
        };
        Counters::bump(counter);
        return fallback;
    };
    let content_type = if ctx.opts.raw_payload {
        "application/octet-stream"
    } else {
        "application/cloudevents+json"
    };
    let letter = letter(msg, dlq, content_type, reason, attempts, error);
    let published =
        tokio::time::timeout(DEAD_LETTER_TIMEOUT, ctx.source.publish_dead_letter(letter))
            .await
            .unwrap_or_else(|_| {
                Err(BrokerError::Unavailable("dead-letter publish timed out".into()).into())
            });
    match published {
        Ok(()) => {
            Counters::bump(&ctx.counters.dead_lettered);
            tracing::warn!(pubsub = %ctx.spec.pubsub_name, topic = %ctx.spec.topic,
                dead_letter_topic = dlq, reason = reason.as_str(), attempts, error,
                "Event sent to the dead-letter topic.");
            Outcome::Drop
        }
        Err(err) => {
            Counters::bump(&ctx.counters.handed_back);
            tracing::error!(pubsub = %ctx.spec.pubsub_name, topic = %ctx.spec.topic,
                dead_letter_topic = dlq, error = %err,
                "Dead-letter publish failed; the broker will redeliver the event.");
            Outcome::Retry
        }
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
