//! Resource loading against the fixture folders: the shipped samples, an
//! invalid set where every error must be listed at once, secrets, templates,
//! scopes, v1alpha1/v2alpha1 normalisation and duplicates.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sidebus::broker::registry::{BuildContext, Factory, MetadataProblem, Validation};
use sidebus::broker::{BrokerError, PubSub, Registry};
use sidebus::config::model::{ComponentSpec, RouteRule};
use sidebus::config::resources::{self, Backoff, Direction, Loaded, ResiliencyPolicies};
use sidebus::config::validate::{self, EXIT_CONFIG};
use sidebus::config::ConfigError;

fn root(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn fixture(name: &str) -> PathBuf {
    root("tests/fixtures/resources").join(name)
}

fn load_ok(paths: &[PathBuf], app_id: &str) -> Loaded {
    resources::load(paths, app_id, &Registry::builtin())
        .unwrap_or_else(|errors| panic!("unexpected errors:\n{}", lines(&errors)))
}

fn load_err(paths: &[PathBuf], app_id: &str) -> Vec<ConfigError> {
    match resources::load(paths, app_id, &Registry::builtin()) {
        Ok(loaded) => panic!("expected errors, loaded {:?}", loaded.resources),
        Err(errors) => errors,
    }
}

fn lines(errors: &[ConfigError]) -> String {
    errors.iter().map(|e| format!("  {e}\n")).collect()
}

fn file_name(e: &ConfigError) -> &str {
    e.file
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default()
}

fn rule(match_expr: &str, path: &str) -> RouteRule {
    RouteRule {
        match_expr: match_expr.into(),
        path: path.into(),
    }
}

/// A factory for types not compiled into this branch (and for checking how
/// factory problems are reported): requires `brokers`, refuses
/// `password=bad`, warns on `legacy`.
struct FakeFactory(&'static [&'static str]);

#[async_trait]
impl Factory for FakeFactory {
    fn type_names(&self) -> &'static [&'static str] {
        self.0
    }

    fn validate(&self, spec: &ComponentSpec) -> Validation {
        let mut v = Validation::default();
        let md = &spec.metadata;
        let has = |k: &str| md.get(k).is_some_and(|x| !x.is_empty());
        if !has("brokers") && !has("connectionString") {
            v.errors
                .push(MetadataProblem::new("brokers", "", "is required"));
        }
        if md.get("password").is_some_and(|p| p == "bad") {
            v.errors
                .push(MetadataProblem::new("password", "bad", "too weak"));
        }
        if let Some(x) = md.get("legacy") {
            v.warnings
                .push(MetadataProblem::new("legacy", x, "ignored"));
        }
        v
    }

    async fn build(
        &self,
        _: &ComponentSpec,
        _: &BuildContext,
    ) -> Result<Arc<dyn PubSub>, BrokerError> {
        Ok(Arc::new(sidebus::broker::in_memory::InMemory::new()))
    }
}

#[test]
fn shipped_samples_load_cleanly() {
    let loaded = load_ok(&[root("components")], "checkout");
    assert!(
        loaded.warnings.is_empty(),
        "warnings:\n{}",
        lines(&loaded.warnings)
    );
    let r = &loaded.resources;
    assert_eq!(
        r.components.len(),
        1,
        "components/brokers/ must not be read"
    );
    assert_eq!(r.components[0].name, "pubsub");
    assert_eq!(
        r.components[0]
            .metadata
            .get("consumerID")
            .map(String::as_str),
        Some("checkout")
    );
    let names: Vec<&str> = r.subscriptions.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["orders", "payments"]);
    let orders = &r.subscriptions[0];
    assert_eq!(orders.dead_letter_topic.as_deref(), Some("orders-dead"));
    assert_eq!(orders.rules.len(), 3);
    assert_eq!(orders.rules[2], rule("", "/orders"));

    // The orders subscription is scoped to checkout.
    let billing = load_ok(&[root("components")], "billing");
    assert_eq!(billing.resources.subscriptions.len(), 1);
    assert_eq!(billing.resources.subscriptions[0].name, "payments");

    let policies =
        ResiliencyPolicies::from_specs(&r.resiliencies).unwrap_or_else(|e| panic!("{e:?}"));
    let out = policies.policies_for("pubsub", Direction::Outbound);
    assert_eq!(out.timeout, Some(Duration::from_secs(5)));
    let retry = out.retry.unwrap_or_else(|| panic!("outbound retry"));
    assert_eq!(
        (retry.backoff, retry.duration, retry.max_retries),
        (Backoff::Constant, Duration::from_secs(1), 5)
    );
    assert_eq!(
        out.circuit_breaker.map(|cb| cb.trip.as_str()),
        Some("consecutiveFailures > 5")
    );
    let inbound = policies.policies_for("pubsub", Direction::Inbound);
    let retry = inbound.retry.unwrap_or_else(|| panic!("inbound retry"));
    assert_eq!(retry.backoff, Backoff::Exponential);
    let matching = retry.matching.clone().unwrap_or_default();
    assert!(
        matching.retries_http(503) && matching.retries_http(429) && !matching.retries_http(404)
    );
    assert!(matching.retries_grpc(14) && !matching.retries_grpc(3));
    assert!(inbound.circuit_breaker.is_none());
}

#[test]
fn broker_samples_are_valid_components() {
    let mut registry = Registry::builtin();
    registry.register(Arc::new(FakeFactory(&["pubsub.kafka", "pubsub.rabbitmq"])));
    // Both samples are named `pubsub`: load them one at a time, as users do.
    for file in ["kafka.yaml", "rabbitmq.yaml"] {
        let path = root("components/brokers").join(file);
        let loaded = resources::load(&[path], "checkout", &registry)
            .unwrap_or_else(|e| panic!("{file}:\n{}", lines(&e)));
        assert_eq!(loaded.resources.components.len(), 1, "{file}");
        let md = &loaded.resources.components[0].metadata;
        assert_eq!(
            md.get("consumerID").map(String::as_str),
            Some("checkout"),
            "{file}"
        );
    }
}

#[test]
fn invalid_set_reports_every_error_at_once() {
    let errors = load_err(&[fixture("invalid")], "checkout");
    #[rustfmt::skip]
    let expected: &[(&str, &str, &str, &str)] = &[
        ("a-components.yaml", "Component/nats", "spec.type", "unknown pubsub type; known types: pubsub.in-memory"),
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
        ("c-subscriptions.yaml", "Subscription/bad-settings", "spec.metadata.maxInFlight", "from 1 to 100000"),
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

#[test]
fn templates_expand_in_component_metadata() {
    std::env::set_var("POD_NAME", "checkout-pod-1");
    std::env::set_var("NAMESPACE", "shop");
    let loaded = load_ok(&[fixture("templates")], "checkout");
    let md = &loaded.resources.components[0].metadata;
    let get = |k: &str| md.get(k).map(String::as_str).unwrap_or_default();
    assert_eq!(
        get("consumerID"),
        "orders-workers",
        "an explicit consumerID is kept"
    );
    assert_eq!(get("consumerGroup"), "checkout-group");
    assert_eq!(get("clientId"), "checkout-pod-1");
    assert_eq!(get("nsGroup"), "shop.checkout");
    assert!(
        uuid::Uuid::parse_str(get("instance")).is_ok(),
        "{}",
        get("instance")
    );
    assert!(
        loaded.warnings.iter().any(
            |w| w.field == "spec.metadata.nsGroup" && w.reason.contains("prefixes every topic")
        ),
        "{}",
        lines(&loaded.warnings)
    );
}

#[test]
fn scopes_select_resources_per_app() {
    let checkout = load_ok(&[fixture("scoping")], "checkout").resources;
    let names = |r: &sidebus::config::Resources| {
        (
            r.components
                .iter()
                .map(|c| format!("{}{:?}", c.name, c.scopes))
                .collect::<Vec<_>>(),
            r.subscriptions
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>(),
            r.resiliencies
                .iter()
                .map(|x| x.name.clone())
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        names(&checkout),
        (
            vec!["shared[]".into(), "private[\"checkout\"]".into()],
            vec!["everyone".into()],
            vec![]
        )
    );
    let billing = load_ok(&[fixture("scoping")], "billing").resources;
    assert_eq!(
        names(&billing),
        (
            vec!["shared[]".into(), "private[\"billing\"]".into()],
            vec!["billing-only".into(), "everyone".into()],
            vec!["billing-resiliency".into()]
        )
    );
    // An app in no scope list sees only the unscoped resources.
    let other = load_ok(&[fixture("scoping")], "other").resources;
    assert_eq!(
        names(&other),
        (vec!["shared[]".into()], vec!["everyone".into()], vec![])
    );
    // No app id (`sidebus validate` without --app-id): everything is checked,
    // and the two `private` components do not collide (disjoint scopes).
    let all = load_ok(&[fixture("scoping")], "").resources;
    assert_eq!(
        (
            all.components.len(),
            all.subscriptions.len(),
            all.resiliencies.len()
        ),
        (3, 2, 1)
    );
    assert!(all
        .components
        .iter()
        .all(|c| !c.metadata.contains_key("consumerID")));
}

#[test]
fn v1alpha1_and_v2alpha1_normalise_and_other_resources_are_ignored() {
    let loaded = load_ok(&[fixture("multi-doc")], "checkout");
    let r = &loaded.resources;
    assert_eq!(r.components.len(), 1);
    let md = &r.components[0].metadata;
    // YAML numbers and bools arrive as daprd's strings.
    assert_eq!(
        (
            md["maxLen"].as_str(),
            md["enabled"].as_str(),
            md["ratio"].as_str()
        ),
        ("3", "true", "0.5")
    );

    let v2 = &r.subscriptions[0];
    assert_eq!(v2.name, "events-sub");
    assert_eq!(
        v2.rules,
        [
            rule("event.data.level == \"error\"", "/audit/errors"),
            rule("", "/audit/catch-all"),
            rule("", "/audit")
        ]
    );
    assert_eq!(
        v2.kind,
        sidebus::config::model::SubscriptionKind::Declarative
    );
    assert!(v2.bulk.enabled);
    assert_eq!(
        (v2.bulk.max_messages_count, v2.bulk.max_await_duration_ms),
        (500, 40)
    );
    assert_eq!(
        v2.metadata.get("rawPayload").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        v2.metadata.get("maxRetries").map(String::as_str),
        Some("-1")
    );
    assert_eq!(v2.dead_letter_topic, None);

    let v1 = &r.subscriptions[1];
    assert_eq!((v1.name.as_str(), v1.topic.as_str()), ("legacy", "legacy"));
    assert_eq!(v1.rules, [rule("", "/legacy")]);
    assert_eq!(v1.dead_letter_topic.as_deref(), Some("legacy-dead"));
    assert_eq!(v1.bulk, sidebus::config::model::BulkSubscribe::default());

    let ignored: Vec<(&str, &str)> = loaded
        .warnings
        .iter()
        .filter(|w| w.reason.ends_with("ignored") && !w.field.starts_with("spec.metadata"))
        .map(|w| (w.resource.as_str(), w.value.as_str()))
        .collect();
    assert_eq!(
        ignored,
        [
            ("Component/statestore", "state.redis"),
            ("Configuration/tracing", "Configuration"),
            ("Component/bindings-cron", "bindings.cron")
        ]
    );
}

#[test]
fn duplicate_subscriptions_warn_and_the_first_wins() {
    let loaded = load_ok(&[fixture("duplicates")], "checkout");
    let subs = &loaded.resources.subscriptions;
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].name, "first");
    let warnings: Vec<(&str, &str, &str)> = loaded
        .warnings
        .iter()
        .map(|w| (w.resource.as_str(), w.field.as_str(), w.reason.as_str()))
        .collect();
    assert_eq!(warnings.len(), 2, "{}", lines(&loaded.warnings));
    assert_eq!(
        (warnings[0].0, warnings[0].1),
        ("Subscription/second", "spec.topic")
    );
    assert!(
        warnings[0]
            .2
            .contains("already subscribed by Subscription/first"),
        "{}",
        warnings[0].2
    );
    assert_eq!(
        (warnings[1].0, warnings[1].1),
        (
            "Resiliency/targets-absent",
            "spec.targets.components.kafka-prod"
        )
    );
}

#[test]
fn duplicate_component_names_are_errors_within_and_across_files() {
    let errors = load_err(&[fixture("duplicate-names")], "checkout");
    let got: Vec<(&str, &str)> = errors
        .iter()
        .map(|e| (file_name(e), e.field.as_str()))
        .collect();
    assert_eq!(
        got,
        [("a.yaml", "metadata.name"), ("b.yaml", "metadata.name")],
        "{}",
        lines(&errors)
    );
    assert!(errors
        .iter()
        .all(|e| e.reason.contains("first defined in") && e.reason.contains("a.yaml")));
    // Also across two resources paths.
    let errors = load_err(
        &[root("components"), fixture("syntax").join("a-good.yaml")],
        "checkout",
    );
    assert_eq!(errors.len(), 1, "{}", lines(&errors));
    assert!(errors[0].reason.contains("pubsub.yaml"));
}

#[test]
fn yaml_syntax_errors_name_document_line_and_column() {
    let errors = load_err(&[fixture("syntax")], "checkout");
    assert_eq!(errors.len(), 1, "{}", lines(&errors));
    assert_eq!(
        (file_name(&errors[0]), errors[0].resource.as_str()),
        ("b-bad.yaml", "<document 2>")
    );
    assert!(
        errors[0]
            .reason
            .starts_with("YAML syntax error at line 8 column 1: "),
        "{}",
        errors[0].reason
    );
}

#[test]
fn missing_folder_is_an_error_and_empty_folder_is_fine() {
    let missing = fixture("no-such-folder");
    let errors = load_err(&[fixture("empty"), missing.clone()], "checkout");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].file, missing);
    assert_eq!(errors[0].reason, "resources folder does not exist");

    let loaded = load_ok(&[fixture("empty")], "checkout");
    assert!(loaded.resources.components.is_empty() && loaded.warnings.is_empty());
}

#[test]
fn default_component_is_pubsub_of_the_default_type() {
    let registry = Registry::builtin();
    let c = resources::default_component(&registry, "checkout");
    assert_eq!(
        (c.name.as_str(), c.type_name.as_str()),
        ("pubsub", registry.default_type())
    );
    assert_eq!(
        c.metadata.get("consumerID").map(String::as_str),
        Some("checkout")
    );
    assert_eq!(c.source, PathBuf::from("<default>"));
    assert!(registry
        .get(&c.type_name)
        .is_some_and(|f| f.validate(&c).errors.is_empty()));
}
