//! From broker bytes to an [`AppEvent`]: decode the CloudEvent (or wrap a raw
//! payload), check expiry, pick the route; and settle what was refused.

use super::channel::AppEvent;
use super::context::SubContext;
use super::dead_letter::{self, Reason};
use crate::broker::{Outcome, ReceivedMessage};
use crate::envelope;

/// Why an event never reaches the app.
#[derive(Debug)]
pub(crate) enum Rejection {
    /// The bytes are not a CloudEvent.
    Undecodable(String),
    /// `expiration` has passed.
    Expired,
    /// No rule matched.
    NoRoute,
    /// A rule failed to evaluate (e.g. a non-boolean CEL result).
    RouteFailed(String),
}

impl Rejection {
    /// The dead-letter reason and error text.
    pub fn reason_and_error(&self) -> (Reason, String) {
        match self {
            Rejection::Undecodable(e) => (Reason::Undecodable, e.clone()),
            Rejection::Expired => (Reason::Expired, "event expired".into()),
            Rejection::NoRoute => (Reason::NoRoute, "no route matched".into()),
            Rejection::RouteFailed(e) => (Reason::NoRoute, e.clone()),
        }
    }
}

/// Decodes, checks and routes `msg` for the subscription of `ctx`.
pub(crate) fn prepare(ctx: &SubContext, msg: &ReceivedMessage) -> Result<AppEvent, Rejection> {
    let pubsub = &ctx.spec.pubsub_name;
    let body = if ctx.opts.raw_payload {
        envelope::raw_payload_event(&msg.data, &msg.topic, pubsub, &msg.metadata)
    } else {
        msg.data.clone()
    };
    let event = envelope::decode(&body).map_err(|e| Rejection::Undecodable(e.to_string()))?;
    if envelope::is_expired(&event, chrono::Utc::now()) {
        return Err(Rejection::Expired);
    }
    let path = match ctx.router.route(&event) {
        Ok(Some(path)) => path.to_string(),
        Ok(None) => return Err(Rejection::NoRoute),
        Err(e) => return Err(Rejection::RouteFailed(e.to_string())),
    };
    Ok(AppEvent {
        pubsub_name: pubsub.clone(),
        topic: msg.topic.clone(),
        path,
        body,
        event,
        metadata: msg.metadata.clone(),
    })
}

/// Settles an event the delivery layer refused before reaching the app.
pub(crate) async fn reject(
    ctx: &SubContext,
    msg: &ReceivedMessage,
    rejection: Rejection,
) -> Outcome {
    let (reason, error) = rejection.reason_and_error();
    if ctx.spec.dead_letter_topic.is_none() {
        tracing::error!(pubsub = %ctx.spec.pubsub_name, topic = %ctx.spec.topic,
            reason = reason.as_str(), error = %error,
            "Event dropped before delivery; set a dead-letter topic to keep such events.");
    }
    dead_letter::give_up(ctx, msg, reason, 0, &error, Outcome::Drop).await
}

/// The CloudEvent id, for logs.
pub(crate) fn event_id(ev: &AppEvent) -> &str {
    attribute(&ev.event, "id").unwrap_or("")
}

/// A string attribute of a CloudEvent.
pub(crate) fn attribute<'a>(event: &'a envelope::Event, name: &str) -> Option<&'a str> {
    event.get(name).and_then(serde_json::Value::as_str)
}
