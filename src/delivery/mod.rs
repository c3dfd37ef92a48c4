//! The delivery layer: from a component subscription to the app and back to
//! an [`Outcome`](crate::broker::Outcome) the component settles. What it
//! promises (answers, retries, dead letters, ordering, in-flight bound,
//! shutdown) is written once, in `docs/delivery.md`.
//!
//! Where things live:
//! - `manager.rs`: one dispatcher per subscription, subscribed on its
//!   component (retried forever in the background), graceful shutdown
//! - `source.rs`: the component a subscription reads from, as the runtime
//!   hands it over (delivery never looks components up itself)
//! - `context.rs`: what one subscription's tasks share (spec, options,
//!   channel, stop signals, counters)
//! - `dispatcher.rs`: single-event delivery (in-flight bound, lanes, retries)
//! - `bulk.rs`: bulk-subscribe delivery (batches, one request per path)
//! - `lanes.rs`: ordering modes (`key`, `partition`, `none`)
//! - `retry.rs`: the default retry policy (capped exponential backoff)
//! - `prepare.rs`: decode, expiry and routing of one broker message, and
//!   settling what it refused
//! - `dead_letter.rs`: republishing to the dead-letter topic (`give_up`)
//! - `options.rs`: subscription metadata the dispatcher understands
//! - `channel.rs`: what every app channel speaks ([`AppChannel`], the
//!   events and the app's verdicts)
//! - `app_http/`: the HTTP app channel and its answer mapping;
//!   `discovery.rs`: `GET /dapr/subscribe` and the merge with declarative
//!   subscriptions
//! - `app_grpc/`: the gRPC app channel (`AppCallback`) and
//!   `ListTopicSubscriptions`; also builds the `TopicEventRequest` that
//!   streaming subscriptions send
//! - `app_stream.rs`: the streaming app channel (a client stream of
//!   `SubscribeTopicEventsAlpha1` as the app)

pub mod app_grpc;
mod app_http;
mod app_stream;
mod bulk;
mod channel;
mod context;
mod dead_letter;
mod discovery;
mod dispatcher;
mod forward;
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
