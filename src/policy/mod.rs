//! The outbound policy stack: wrappers applied around a component's publish
//! before the broker sees it (DESIGN §3).

pub mod outbox;
