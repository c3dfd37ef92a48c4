//! The outbound policy stack: what a component's publish goes through
//! before the broker sees it (DESIGN §3).

pub mod outbox;
