//! Configuration: command line flags (`flags`), resource YAML (`resources`),
//! component and subscription metadata (`metadata`, `subscription`,
//! `outbox`, `duration`) and their validation (`validate`). Everything is
//! parsed and checked before any port is bound; all errors are collected and
//! printed together.
//!
//! Every other module reads config; config imports none of them. What it
//! needs from the component registry comes through the
//! [`ComponentTypes`](resources::ComponentTypes) trait, which `broker`
//! implements.

pub mod flags;
pub mod model;

pub use flags::{Cli, Command, Settings};
pub use model::{ComponentSpec, Resources, SubscriptionSpec};
pub mod cel;
pub mod duration;
pub mod error;
pub mod metadata;
mod metadata_reader;
pub mod outbox;
pub mod resources;
pub mod secret;
pub mod secrets;
pub mod subscription;
pub mod template;
pub mod validate;

pub use error::ConfigError;
pub use metadata::Metadata;
pub use secret::Secret;
