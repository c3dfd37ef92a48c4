//! Failing loads: the invalid set (every error at once), the validate
//! engine, factory problems, and secrets (resolved, never printed).

use std::sync::Arc;

use sidebus::broker::registry::Registry;
use sidebus::config::resources;
use sidebus::config::validate::{self, EXIT_CONFIG};

use super::support::{file_name, fixture, lines, load_err, load_ok, root, FakeFactory};

#[test]
fn invalid_set_reports_every_error_at_once() {
    let errors = load_err(&[fixture("invalid")], "checkout");
    #[rustfmt::skip]
    let expected: &[(&str, &str, &str, &str)] = &[
        ("a-components.yaml", "Component/nats", "spec.type", "unknown pubsub type; known types: "),
        ("a-components.yaml", "<document 2>", "metadata.name", "is required"),
        ("a-components.yaml", "Component/future", "apiVersion", "unsupported; expected dapr.io/v1alpha1"),
        ("a-components.yaml", "Component/locked", "spec.metadata.password.secretKeyRef", "not found"),
        ("b-components.yaml", "Component/pubsub", "metadata.name", "duplicate component name; first defined in"),
        ("b-components.yaml", "Component/typeless", "spec.type", "is required"),
        ("b-components.yaml", "<document 3>", "kind", "is required"),
        ("c-subscriptions.yaml", "Subscription/no-topic", "spec.topic", "is required"),
        ("c-subscriptions.yaml", "Subscription/bad-cel", "spec.routes.rules[0].match", "CEL does not compile: Syntax error"),
        ("c-subscriptions.yaml", "Subscription/no-route", "spec.route", "at least one route is required"),
        ("c-subscriptions.yaml", "Subscription/future-sub", "apiVersion", "expected dapr.io/v1alpha1 or dapr.io/v2alpha1"),
        ("c-subscriptions.yaml", "Subscription/bad-settings", "spec.bulkSubscribe.maxMessagesCount", "from 1 to 10000"),
        ("c-subscriptions.yaml", "Subscription/bad-settings", "spec.metadata.maxInFlight", "from 1 to 65536"),
        ("c-subscriptions.yaml", "Subscription/bad-settings", "spec.metadata.ordering", "one of key, partition, none"),
        ("c-subscriptions.yaml", "Subscription/bad-settings", "spec.metadata.rawPayload", "must be a boolean"),
        ("c-subscriptions.yaml", "Subscription/bad-settings", "spec.metadata.retryMaxInterval", "must be a duration"),
        ("c-subscriptions.yaml", "Subscription/wrong-pubsub", "spec.pubsubname", "no pubsub component with this name"),
        ("d-resiliency.yaml", "Resiliency/broken-policies", "spec.policies.timeouts.slow", "not a duration"),
        ("d-resiliency.yaml", "Resiliency/broken-policies", "spec.policies.retries.badCodes.matching.httpStatusCodes", "within 100-599"),
        ("d-resiliency.yaml", "Resiliency/broken-policies", "spec.policies.retries.badCodes.matching.gRPCStatusCodes", "within 0-16"),
        ("d-resiliency.yaml", "Resiliency/broken-policies", "spec.policies.retries.linear.policy", "constant or exponential"),
        ("d-resiliency.yaml", "Resiliency/broken-policies", "spec.policies.retries.negative.maxRetries", "integer >= -1"),
        ("d-resiliency.yaml", "Resiliency/broken-policies", "spec.policies.circuitBreakers.badTrip.trip", "CEL does not compile"),
        ("d-resiliency.yaml", "Resiliency/broken-policies", "spec.policies.circuitBreakers.zero.maxRequests", "integer >= 1"),
        ("d-resiliency.yaml", "Resiliency/broken-policies", "spec.targets.components.pubsub.outbound.retry", "no retry policy with this name"),
        ("e-syntax.yaml", "<document 1>", "", "YAML syntax error at line 5 column 1"),
    ];
    let got: Vec<(&str, &str, &str, &str)> = errors
        .iter()
        .map(|e| {
            (
                file_name(e),
                e.resource.as_str(),
                e.field.as_str(),
                e.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(errors.len(), expected.len(), "got:\n{}", lines(&errors));
    for (g, x) in got.iter().zip(expected) {
        assert_eq!((g.0, g.1, g.2), (x.0, x.1, x.2), "got:\n{}", lines(&errors));
        assert!(g.3.contains(x.3), "reason {:?} lacks {:?}", g.3, x.3);
    }
    // The unknown-type error lists every compiled-in type.
    let unknown = errors
        .iter()
        .find(|e| e.reason.starts_with("unknown pubsub type"))
        .unwrap();
    for known in sidebus::broker::registry::Registry::builtin().type_names() {
        assert!(
            unknown.reason.contains(known),
            "{} lacks {known}",
            unknown.reason
        );
    }
    // Offending values are shown, secrets are not.
    let locked = &errors[3];
    assert_eq!(locked.value, "<secret>");
    assert_eq!(errors[12].value, "0");
    let printed = errors[8].to_string();
    assert!(printed.contains("c-subscriptions.yaml: Subscription/bad-cel: spec.routes.rules[0].match=\"event.type ==\": CEL"), "{printed}");
    assert!(!printed.contains('\n'));
}

#[test]
fn validate_engine_lists_everything_and_exits_78() {
    let registry = Registry::builtin();
    let bad = validate::validate(&[fixture("invalid")], "checkout", &registry);
    assert_eq!(bad.exit_code(), EXIT_CONFIG);
    let mut out = Vec::new();
    bad.write_to(&mut out).unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("error: ")).count(),
        26,
        "{text}"
    );
    assert!(
        text.ends_with("invalid: 26 error(s), 0 warning(s)\n"),
        "{text}"
    );

    let good = validate::validate(&[root("components")], "checkout", &registry);
    assert_eq!(good.exit_code(), 0, "{:?}", good.errors);
    assert_eq!(good.counts, (1, 2, 1));
}

#[test]
fn secrets_resolve_from_env_and_files_and_never_print() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(dir.path().join("kafka-creds")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("kafka-creds/password"), "file-s3cret\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::env::set_var("SIDEBUS_SECRETS_DIR", dir.path());
    std::env::set_var("SIDEBUS_TEST_TOKEN", "env-t0ken");
    std::env::set_var("SIDEBUS_TEST_FALLBACK", "env-fallback");

    let loaded = load_ok(&[fixture("secrets")], "checkout");
    let md = &loaded.resources.components[0].metadata;
    assert_eq!(md.get("token").map(String::as_str), Some("env-t0ken"));
    assert_eq!(md.get("password").map(String::as_str), Some("file-s3cret"));
    assert_eq!(md.get("fallback").map(String::as_str), Some("env-fallback"));
    // pubsub.in-memory warns about every key; the warnings mask secrets.
    assert_eq!(loaded.warnings.len(), 3, "{}", lines(&loaded.warnings));
    for w in &loaded.warnings {
        assert_eq!(w.value, "<secret>", "{w}");
        let shown = w.to_string();
        assert!(
            !shown.contains("s3cret")
                && !shown.contains("t0ken")
                && !shown.contains("env-fallback"),
            "{shown}"
        );
    }
}

#[test]
fn factory_problems_become_config_errors_with_secrets_masked() {
    let mut registry = Registry::builtin();
    registry.register(Arc::new(FakeFactory(&["pubsub.fake"])));
    std::env::set_var("SIDEBUS_TEST_WEAK", "bad");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let yaml = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: fake}\nspec:\n  type: pubsub.fake\n  metadata:\n    - {name: password, secretKeyRef: {name: SIDEBUS_TEST_WEAK, key: SIDEBUS_TEST_WEAK}}\n    - {name: legacy, value: 1}\n";
    std::fs::write(dir.path().join("fake.yaml"), yaml).unwrap_or_else(|e| panic!("{e}"));
    let errors = resources::load(&[dir.path().to_path_buf()], "checkout", &registry)
        .err()
        .unwrap_or_else(|| panic!("factory errors must fail the load"));
    let got: Vec<(&str, &str, &str, &str)> = errors
        .iter()
        .map(|e| {
            (
                e.resource.as_str(),
                e.field.as_str(),
                e.value.as_str(),
                e.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("Component/fake", "spec.metadata.brokers", "", "is required"),
            (
                "Component/fake",
                "spec.metadata.password",
                "<secret>",
                "too weak"
            ),
        ]
    );

    // Fixed: now only the warning remains, in Loaded.warnings.
    let yaml = yaml
        .replace(
            "SIDEBUS_TEST_WEAK, key: SIDEBUS_TEST_WEAK}}",
            "SIDEBUS_TEST_WEAK, key: SIDEBUS_TEST_WEAK}}\n    - {name: brokers, value: \"k:9092\"}",
        )
        .replace(
            "secretKeyRef: {name: SIDEBUS_TEST_WEAK, key: SIDEBUS_TEST_WEAK}",
            "value: strong",
        );
    std::fs::write(dir.path().join("fake.yaml"), yaml).unwrap_or_else(|e| panic!("{e}"));
    let loaded = resources::load(&[dir.path().to_path_buf()], "checkout", &registry)
        .unwrap_or_else(|e| panic!("{}", lines(&e)));
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(
        (
            loaded.warnings[0].field.as_str(),
            loaded.warnings[0].value.as_str()
        ),
        ("spec.metadata.legacy", "1")
    );
}
