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
