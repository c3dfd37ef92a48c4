//! The outbound policy stack: what a component's publish goes through
//! before the broker sees it. Today that is the durable outbox
//! (`docs/outbox.md`).

pub mod outbox;
