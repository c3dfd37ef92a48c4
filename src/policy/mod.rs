//! The outbound policy stack: wrappers applied around a component's publish
//! before the broker sees it. Today that is the durable outbox
//! (`docs/outbox.md`).

pub mod outbox;
