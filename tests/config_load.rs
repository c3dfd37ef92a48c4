//! Resource loading against the fixture folders: the shipped samples, an
//! invalid set where every error must be listed at once (`errors.rs`),
//! secrets, templates, scopes, v1alpha1/v2alpha1 normalisation, duplicates.

#[path = "config_load/errors.rs"]
mod errors;
#[path = "config_load/parity.rs"]
mod parity;
#[path = "config_load/parity_remote.rs"]
mod parity_remote;
#[path = "config_load/support.rs"]
mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sidebus::broker::registry::Registry;
use sidebus::config::resources::{self, Backoff, Direction, ResiliencyPolicies};

use support::{file_name, fixture, lines, load_err, load_ok, root, rule, FakeFactory};

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

/// Component names become folder names (`<data dir>/<name>`, the outbox's
/// `<data dir>/outbox/<name>`): `../x` escaped the data folder, and an
/// embedded component named `outbox` shared the outbox's folder.
#[test]
fn names_that_would_escape_or_collide_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let component = |name: &str, ty: &str| {
        format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: \"{name}\"\nspec:\n  type: {ty}\n  version: v1\n"
        )
    };
    let bad = ["../x", "a/b", ".hidden", "-lead", "trail-", "x y"];
    let mut docs: Vec<String> = bad
        .iter()
        .map(|n| component(n, "pubsub.in-memory"))
        .collect();
    docs.push(component("outbox", "pubsub.embedded"));
    docs.push(component("order_pubsub.v2", "pubsub.in-memory"));
    std::fs::write(dir.path().join("c.yaml"), docs.join("---\n")).expect("write");
    let errors = load_err(&[dir.path().to_path_buf()], "checkout");
    for name in bad {
        assert!(
            errors
                .iter()
                .any(|e| e.field == "metadata.name" && e.value == name),
            "{name} not refused:\n{}",
            lines(&errors)
        );
    }
    assert!(
        errors
            .iter()
            .any(|e| e.resource.contains("outbox") && e.reason.contains("own dataDir")),
        "embedded 'outbox' not refused:\n{}",
        lines(&errors)
    );
    assert!(
        !errors.iter().any(|e| e.resource.contains("order_pubsub")),
        "a self-hosted style name is fine:\n{}",
        lines(&errors)
    );

    // With its own dataDir, an embedded component may be called outbox.
    let ok = tempfile::tempdir().expect("tempdir");
    let mut doc = component("outbox", "pubsub.embedded");
    doc.push_str("  metadata:\n  - name: dataDir\n    value: /tmp/elsewhere\n");
    std::fs::write(ok.path().join("c.yaml"), doc).expect("write");
    load_ok(&[ok.path().to_path_buf()], "checkout");
}
