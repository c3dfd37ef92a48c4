//! The delivery layer: from a component subscription to the app and back to
//! an [`Outcome`](crate::broker::Outcome) the component settles.
//!
//! Where things live:
//! - `manager.rs`: one dispatcher per subscription, subscribed on its
//!   component (retried forever in the background), graceful shutdown
//! - `source.rs`: the component a subscription reads from, as the runtime
//!   hands it over (delivery never looks components up itself)
//! - `dispatcher.rs`: single-event delivery (in-flight bound, lanes, retries)
//! - `context.rs`: what one subscription's tasks share (spec, options,
//!   channel, stop signals, counters)
//! - `bulk.rs`: bulk-subscribe delivery (batches, one request per path)
//! - `lanes.rs`: ordering modes (`key`, `partition`, `none`)
//! - `retry.rs`: the default retry policy (capped exponential backoff)
//! - `prepare.rs`: decode, expiry and routing of one broker message, and
//!   settling what it refused
//! - `dead_letter.rs`: republishing to the dead-letter topic (`give_up`)
//! - `options.rs`: subscription metadata the dispatcher understands
//! - `channel.rs`: what every app channel speaks ([`AppChannel`], the
//!   events and the app's verdicts)
//! - `app_http.rs`: the HTTP app channel; `discovery.rs`: `GET /dapr/subscribe`
//! - `app_grpc/`: the gRPC app channel (`AppCallback`) and
//!   `ListTopicSubscriptions`; also builds the `TopicEventRequest` that
//!   streaming subscriptions send
//! - `app_stream.rs`: the streaming app channel (a client stream of
//!   `SubscribeTopicEventsAlpha1` as the app)
//!
//! Semantics (DESIGN §6):
//! - `submit` waits while the subscription has `maxInFlight` (default 256)
//!   events unfinished: that is the backpressure reaching the broker. A global
//!   semaphore caps calls to the app at `--app-max-concurrency`.
//! - Ordering (`ordering` metadata): `key` (default) runs events with the same
//!   broker key one at a time in submit order, `partition` does the same per
//!   partition, `none` runs everything in parallel. A retrying event keeps its
//!   lane, so later events of its key wait behind it. Waiting events hold
//!   in-flight slots, so one hot key can fill the bound and pause the
//!   subscription: that is the backpressure working, not a stall. An event
//!   handed back to the broker (below) leaves its lane; the broker decides
//!   when it comes back.
//! - An event that cannot be decoded, has expired, matches no route or whose
//!   route expression fails is dead-lettered when the subscription has a
//!   dead-letter topic, and otherwise dropped with an error log and counted
//!   (`SubscriptionStats::dropped`). daprd hands undecodable events back to the
//!   broker instead; that redelivers the same bytes forever (a hot loop), and
//!   they can never succeed.
//! - App answers: SUCCESS acks; DROP (and HTTP 404) dead-letters if
//!   configured, then acks; RETRY retries in process per [`retry`] while the
//!   event keeps its lane and in-flight slot. When the retry budget is spent
//!   the event is dead-lettered and acked if the subscription has a
//!   dead-letter topic, else handed back to the broker with
//!   [`Outcome::Retry`](crate::broker::Outcome::Retry) for later redelivery.
//! - Dead letters carry the original broker bytes and metadata plus
//!   `deadLetterReason`, `deadLetterAttempts`, `deadLetterSourceTopic` and
//!   `deadLetterError`; the event is acked only after that publish succeeded,
//!   otherwise it goes back to the broker with `Outcome::Retry`.
//! - Bulk subscriptions collect up to `maxMessagesCount` events or
//!   `maxAwaitDurationMs`, send one request per route path, and retry the
//!   entries the app answered RETRY in bulk requests that contain only those
//!   still-pending entries, after the same backoff. Batches of one
//!   subscription are delivered one after another, so bulk keeps broker
//!   order between batches; lanes do not apply inside a batch.
//! - Shutdown stops fetching, cancels backoffs, lets calls already at the app
//!   finish within the grace period, then abandons the rest: their `Ack`s
//!   resolve `Err` and the broker redelivers them. Nothing is dead-lettered
//!   because of shutdown.

pub mod app_grpc;
mod app_http;
mod app_stream;
mod bulk;
mod channel;
mod context;
mod dead_letter;
mod discovery;
mod dispatcher;
pub mod lanes;
mod manager;
mod options;
mod prepare;
pub mod retry;
mod source;

pub use app_grpc::{discover_grpc, GrpcAppChannel};
pub use app_http::HttpAppChannel;
pub use app_stream::AppStream;
pub use channel::{AppChannel, AppEvent, AppResult, BulkAppEntry, BulkAppRequest};
pub use discovery::{discover_http, merge, parse_subscriptions};
pub use manager::{DeliveryManager, SubscriptionStats};
pub use options::{BadOption, SubscriptionOptions};
pub use source::{DeadLetterError, Source};
