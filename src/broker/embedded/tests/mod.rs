//! Tests of the embedded broker: the shared conformance suite, restart and
//! replay, torn tails, retention, the folder lock, and a SIGKILL crash test.

mod crash;
mod reopen;
mod storage;

use std::path::Path;
use std::sync::Arc;

use super::config::EmbeddedConfig;
use super::Embedded;
use crate::broker::PubSub;

/// Opens the embedded broker in `dir` with `config`.
async fn open(dir: &Path, config: EmbeddedConfig) -> Arc<Embedded> {
    let broker = Embedded::open(dir.to_path_buf(), config)
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", dir.display()));
    Arc::new(broker)
}

/// A fresh broker in its own temp folder. The folder is left behind (a few
/// KB per case): the suite owns only the broker, not a guard for the folder.
async fn fresh() -> Arc<dyn PubSub> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.keep();
    open(&path, EmbeddedConfig::default()).await as Arc<dyn PubSub>
}

mod conformance {
    crate::conformance_suite!(super::fresh);
}
