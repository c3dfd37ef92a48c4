//! The running sidecar: its shared state (`state.rs`: components by name,
//! active subscriptions, readiness, shutdown signals), each component with
//! its outbox (`component.rs`), the publish path the API edges call
//! (`publish.rs`, failing with [`PublishError`]), the subscriptions it hands
//! to the delivery layer (`subscriber.rs`), and its start-up and shutdown
//! steps (`start.rs`). The edges read it; `crate::sidecar` builds it.

mod component;
mod error;
mod health;
pub mod publish;
pub mod scopes;
pub mod start;
mod state;
mod subscriber;

pub use component::{ComponentError, ComponentHandle, PublishReceipt};
pub use error::PublishError;
pub use scopes::TopicScopes;
pub use state::{Readiness, Runtime};
pub use subscriber::Subscriber;
