//! Configuration: command line flags (`flags`), resource YAML (`resources`),
//! and their validation (`validate`). Everything is parsed and checked before
//! any port is bound; all errors are collected and printed together.

pub mod flags;
pub mod model;

pub use flags::{Cli, Command, Settings};
pub use model::{ComponentSpec, Resources, SubscriptionSpec};
pub mod duration;
pub mod error;
pub mod resources;
pub mod secrets;
pub mod template;
pub mod validate;

pub use error::ConfigError;
