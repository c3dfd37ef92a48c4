//! Tests of the embedded broker: the shared conformance suite, restart and
//! replay, torn tails, retention, the folder lock, and a SIGKILL crash test.

mod crash;
mod faults;
mod groups;
mod props;
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

mod factory {
    use crate::broker::embedded::EmbeddedFactory;
    use crate::broker::factory::{BuildContext, Factory};
    use crate::broker::registry::Registry;
    use crate::broker::Metadata;
    use crate::config::model::ComponentSpec;

    fn spec(name: &str, meta: &[(&str, &str)]) -> ComponentSpec {
        ComponentSpec {
            name: name.into(),
            type_name: "pubsub.embedded".into(),
            version: "v1".into(),
            metadata: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Metadata>(),
            scopes: Vec::new(),
            source: "<test>".into(),
        }
    }

    #[test]
    fn registered_as_the_default() {
        let reg = Registry::builtin();
        assert_eq!(reg.default_type(), "pubsub.embedded");
        assert!(reg.get("pubsub.embedded").is_some());
    }

    #[test]
    fn validate_reports_errors_and_unknown_keys() {
        let v = EmbeddedFactory.validate(&spec(
            "p",
            &[
                ("partitions", "many"),
                ("redeliverInterval", "1s"),
                ("consumerID", "x"),
            ],
        ));
        assert_eq!(v.errors.len(), 1);
        assert_eq!(v.errors[0].key, "partitions");
        assert_eq!(v.warnings.len(), 1);
        assert_eq!(v.warnings[0].key, "redeliverInterval");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn builds_under_the_data_dir_and_refuses_a_second_owner() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctx = BuildContext {
            app_id: "app".into(),
            data_dir: dir.path().to_path_buf(),
        };
        let first = EmbeddedFactory
            .build(&spec("orders", &[]), &ctx)
            .await
            .expect("build");
        assert!(dir.path().join("orders").join("LOCK").exists());
        let err = match EmbeddedFactory.build(&spec("orders", &[]), &ctx).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a second owner opened the folder"),
        };
        let folder = dir.path().join("orders").display().to_string();
        assert!(err.contains(&folder) && err.contains("pid="), "{err}");
        first.close().await.expect("close");

        let custom = dir.path().join("custom");
        let other = EmbeddedFactory
            .build(
                &spec("orders", &[("dataDir", &custom.display().to_string())]),
                &ctx,
            )
            .await
            .expect("build with dataDir");
        assert!(custom.join("LOCK").exists());
        other.close().await.expect("close");
    }
}
