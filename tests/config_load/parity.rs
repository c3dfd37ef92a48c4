//! `sidebus validate` and start-up agree: for each resource folder below,
//! the errors `validate` lists are exactly the errors start-up's
//! configuration step refuses with (same messages), and when there are
//! none, start-up builds every component and really starts every
//! subscription. Run-time subscriptions (programmatic, streaming) parse
//! their metadata with the same function, checked here too.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sidebus::broker::registry::Registry;
use sidebus::config::metadata::Metadata;
use sidebus::config::validate;
use sidebus::config::Settings;
use sidebus::delivery::{HttpAppChannel, SubscriptionOptions};
use sidebus::runtime::start::{build_components, check_resources};
use sidebus::runtime::{Runtime, Subscriber};

pub const APP_ID: &str = "parity";

/// Metadata as written in a test table.
pub type Pairs = &'static [(&'static str, &'static str)];

/// One resource folder: component type and metadata, subscription
/// metadata, and whether it must be accepted.
struct Case {
    name: &'static str,
    component: &'static str,
    component_md: &'static [(&'static str, &'static str)],
    subscription_md: &'static [(&'static str, &'static str)],
    accepted: bool,
}

const fn case(
    name: &'static str,
    component: &'static str,
    component_md: &'static [(&'static str, &'static str)],
    subscription_md: &'static [(&'static str, &'static str)],
    accepted: bool,
) -> Case {
    Case {
        name,
        component,
        component_md,
        subscription_md,
        accepted,
    }
}

const MEM: &str = "pubsub.in-memory";
const EMB: &str = "pubsub.embedded";

const CASES: &[Case] = &[
    case("defaults", MEM, &[], &[], true),
    case("in-flight 0", MEM, &[], &[("maxInFlight", "0")], false),
    case("in-flight 1", MEM, &[], &[("maxInFlight", "1")], true),
    case(
        "in-flight 65536",
        MEM,
        &[],
        &[("maxInFlight", "65536")],
        true,
    ),
    case(
        "in-flight 65537",
        MEM,
        &[],
        &[("maxInFlight", "65537")],
        false,
    ),
    case(
        "in-flight 80000",
        MEM,
        &[],
        &[("maxInFlight", "80000")],
        false,
    ),
    case("key case", MEM, &[], &[("MaxInFlight", "80000")], false),
    case("key case ok", MEM, &[], &[("MAXINFLIGHT", "8")], true),
    case(
        "retry 1m30s",
        MEM,
        &[],
        &[("retryMaxInterval", "1m30s")],
        true,
    ),
    case(
        "retry 90",
        MEM,
        &[],
        &[("retryInitialInterval", "90")],
        true,
    ),
    case("retry bad", MEM, &[], &[("retryMaxInterval", "bad")], false),
    case(
        "retry zero",
        MEM,
        &[],
        &[("retryInitialInterval", "0ms")],
        false,
    ),
    case(
        "many bad",
        MEM,
        &[],
        &[
            ("ordering", "fifo"),
            ("rawPayload", "yes"),
            ("maxRetries", "-2"),
        ],
        false,
    ),
    case(
        "unknown key",
        MEM,
        &[("mystery", "1")],
        &[("queueName", "q")],
        true,
    ),
    case("outbox refused", MEM, &[("outbox", "true")], &[], false),
    case(
        "embedded ok",
        EMB,
        &[("Partitions", "8"), ("retention", "90")],
        &[],
        true,
    ),
    case("embedded 1m30s", EMB, &[("retention", "1m30s")], &[], true),
    case("embedded zero", EMB, &[("partitions", "0")], &[], false),
    case(
        "embedded bad",
        EMB,
        &[("retention", "bad"), ("segmentBytes", "1")],
        &[],
        false,
    ),
    case(
        "embedded overflow",
        EMB,
        &[("retention", "9223372036854775808ns")],
        &[],
        false,
    ),
];

/// `md` as the items of a Component's `spec.metadata` list.
pub fn yaml_list(md: &[(&str, &str)]) -> String {
    md.iter()
        .map(|(k, v)| format!("    - {{name: {k}, value: \"{v}\"}}\n"))
        .collect()
}

fn write_case(dir: &Path, c: &Case) {
    let component = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {{name: pubsub}}\nspec:\n  type: {}\n  version: v1\n  metadata:\n{}",
        c.component,
        yaml_list(c.component_md)
    );
    let metadata: String = c
        .subscription_md
        .iter()
        .map(|(k, v)| format!("    {k}: \"{v}\"\n"))
        .collect();
    let subscription = format!(
        "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata: {{name: orders}}\nspec:\n  pubsubname: pubsub\n  topic: orders\n  routes: {{default: /orders}}\n  metadata:\n{metadata}"
    );
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("{e}"));
    };
    write("component.yaml", &component);
    write("subscription.yaml", &subscription);
}

fn settings(resources: &Path, data: &Path) -> Settings {
    Settings {
        app_id: APP_ID.into(),
        // Nothing listens there: no event is published, so nothing is sent.
        app_port: Some(9),
        resources_path: vec![resources.to_path_buf()],
        data_dir: data.to_path_buf(),
        ..Settings::default()
    }
}

/// The subscription's metadata as the run-time parser sees it.
fn subscription_metadata(c: &Case) -> Metadata {
    c.subscription_md
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(feature = "embedded")]
#[tokio::test]
async fn validate_and_start_up_accept_and_refuse_the_same() {
    let registry = Registry::builtin();
    for c in CASES {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (resources, data) = (dir.path().join("resources"), dir.path().join("data"));
        std::fs::create_dir_all(&resources).unwrap_or_else(|e| panic!("{e}"));
        write_case(&resources, c);
        let settings = settings(&resources, &data);

        let report = validate::validate(&settings.resources_path, APP_ID, &registry);
        let validated: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
        let started = check_resources(&settings, &registry);
        let refused: Vec<String> = match &started {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        };
        assert_eq!(validated, refused, "{}: validate vs start-up", c.name);
        assert_eq!(
            validated.is_empty(),
            c.accepted,
            "{}: {validated:?}",
            c.name
        );

        // The run-time parser refuses the same subscription values, with
        // the same key, value and reason.
        let spec_field = |e: &sidebus::config::ConfigError| e.field.starts_with("spec.metadata.");
        let subscription_errors: Vec<(String, String, String)> = report
            .errors
            .iter()
            .filter(|e| e.resource == "Subscription/orders" && spec_field(e))
            .map(|e| {
                (
                    e.field.replace("spec.metadata.", ""),
                    e.value.clone(),
                    e.reason.clone(),
                )
            })
            .collect();
        let spec = sidebus::config::model::SubscriptionSpec {
            name: "orders".into(),
            pubsub_name: "pubsub".into(),
            topic: "orders".into(),
            rules: Vec::new(),
            dead_letter_topic: None,
            metadata: subscription_metadata(c),
            bulk: Default::default(),
            scopes: Vec::new(),
            kind: sidebus::config::model::SubscriptionKind::Streaming,
        };
        let run_time: Vec<(String, String, String)> = match SubscriptionOptions::from_spec(&spec) {
            Ok(_) => Vec::new(),
            Err(bad) => bad
                .problems
                .errors
                .into_iter()
                .map(|p| (p.key, p.value, p.reason))
                .collect(),
        };
        assert_eq!(
            subscription_errors, run_time,
            "{}: validate vs run time",
            c.name
        );

        let Ok(resources) = started else { continue };
        let handles = build_components(&resources, &registry, &settings)
            .await
            .unwrap_or_else(|code| panic!("{}: accepted but the build failed ({code})", c.name));
        let rt = Arc::new(Runtime::new(settings.clone(), handles));
        let manager = Subscriber::new(rt.clone(), Arc::new(HttpAppChannel::new(&settings)));
        manager.start(resources.subscriptions.clone()).await;
        let running: Vec<String> = rt
            .subscriptions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|s| s.name.clone())
            .collect();
        assert_eq!(running, ["orders"], "{}: accepted but not started", c.name);
        manager.shutdown(Duration::from_secs(1)).await;
        for component in rt.components.values() {
            component
                .close()
                .await
                .unwrap_or_else(|e| panic!("{}: close: {e}", c.name));
        }
    }
}
