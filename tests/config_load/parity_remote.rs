//! `sidebus validate` against the parse `build` runs for the components
//! that connect when built (Kafka, RabbitMQ): the same errors, secrets
//! never shown. The in-process components are covered end to end by
//! `parity.rs`.

use sidebus::broker::registry::Registry;
use sidebus::config::metadata::Metadata;
use sidebus::config::validate;

use super::parity::{yaml_list, Pairs, APP_ID};

/// Kafka and RabbitMQ connect when built, so for them the check stops at
/// the parse `build` runs: validate's component errors are that parse's.
#[cfg(all(feature = "kafka", feature = "rabbitmq"))]
#[test]
fn remote_components_validate_with_the_parse_build_uses() {
    use sidebus::broker::kafka::config::KafkaConfig;
    use sidebus::broker::rabbitmq::RabbitConfig;

    let registry = Registry::builtin();
    let cases: &[(&str, Pairs, bool)] = &[
        (
            "pubsub.kafka",
            &[("brokers", "k:9092"), ("sessionTimeout", "1m30s")],
            true,
        ),
        (
            "pubsub.kafka",
            &[("brokers", "k:9092"), ("SessionTimeout", "90")],
            true,
        ),
        (
            "pubsub.kafka",
            &[("brokers", "k:9092"), ("sessionTimeout", "bad")],
            false,
        ),
        (
            "pubsub.kafka",
            &[("saslPassword", "hunter2"), ("authType", "password")],
            false,
        ),
        (
            "pubsub.rabbitmq",
            &[("hostname", "h"), ("heartBeat", "90")],
            true,
        ),
        (
            "pubsub.rabbitmq",
            &[
                ("hostname", "h"),
                ("prefetchCount", "0"),
                ("durable", "yes"),
            ],
            false,
        ),
        (
            "pubsub.rabbitmq",
            &[
                ("connectionString", "amqp://u:pw@h:1/%2f"),
                ("heartBeat", "1.5"),
            ],
            false,
        ),
    ];
    for (type_name, md, accepted) in cases {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let yaml = format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: remote}}\nspec:\n  type: {type_name}\n  version: v1\n  metadata:\n{}    - {{name: outbox, value: \"false\"}}\n",
            yaml_list(md)
        );
        std::fs::write(dir.path().join("c.yaml"), yaml).unwrap_or_else(|e| panic!("{e}"));
        let report = validate::validate(&[dir.path().to_path_buf()], APP_ID, &registry);
        let validated: Vec<(String, String)> = report
            .errors
            .iter()
            .map(|e| (e.field.replace("spec.metadata.", ""), e.reason.clone()))
            .collect();
        let mut meta: Metadata = md
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        meta.insert("outbox".into(), "false".into());
        meta.insert("consumerID".into(), APP_ID.into());
        let problems = if type_name.ends_with("kafka") {
            KafkaConfig::parse(&meta).err()
        } else {
            RabbitConfig::parse(&meta).err()
        };
        let parsed: Vec<(String, String)> = problems
            .map(|v| v.errors.into_iter().map(|p| (p.key, p.reason)).collect())
            .unwrap_or_default();
        assert_eq!(validated, parsed, "{type_name} {md:?}");
        assert_eq!(
            validated.is_empty(),
            *accepted,
            "{type_name} {md:?}: {validated:?}"
        );
        for e in &report.errors {
            assert!(
                !e.to_string().contains("hunter2") && !e.to_string().contains(":pw@"),
                "{e}"
            );
        }
    }
}
