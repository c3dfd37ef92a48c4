//! Routing rules as daprd evaluates them (`docs/delivery.md`, *Subscriptions
//! and routing*).

use super::*;
use crate::envelope::decode;

fn rule(match_expr: &str, path: &str) -> RouteRule {
    RouteRule {
        match_expr: match_expr.to_owned(),
        path: path.to_owned(),
    }
}

fn event(json: &str) -> Event {
    decode(json.as_bytes()).expect("test event is a JSON object")
}

fn widget() -> Event {
    event(
        r#"{"type":"widget","source":"shop","data":{"n":5,"name":"bolt","tags":["a","b"],"nested":{"x":true}}}"#,
    )
}

#[test]
fn router_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Router>();
}

#[test]
fn first_matching_rule_wins_in_order() {
    let router = Router::new(&[
        rule(r#"event.type == "gadget""#, "/gadgets"),
        rule(r#"event.type == "widget""#, "/widgets"),
        rule(r#"event.source == "shop""#, "/shop"),
        rule("", "/default"),
    ])
    .unwrap();
    assert_eq!(router.route(&widget()).unwrap(), Some("/widgets"));
    assert_eq!(router.len(), 4);
}

#[test]
fn empty_match_is_the_default_route() {
    let router = Router::new(&[
        rule(r#"event.type == "gadget""#, "/gadgets"),
        rule("  ", "/default"),
    ])
    .unwrap();
    assert_eq!(router.route(&widget()).unwrap(), Some("/default"));
    let only_default = Router::new(&[rule("", "/orders")]).unwrap();
    assert_eq!(only_default.route(&Event::new()).unwrap(), Some("/orders"));
}

#[test]
fn no_match_is_none() {
    let router = Router::new(&[rule(r#"event.type == "gadget""#, "/gadgets")]).unwrap();
    assert_eq!(router.route(&widget()).unwrap(), None);
    let empty = Router::new(&[]).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.route(&widget()).unwrap(), None);
}

#[test]
fn nested_data_and_int_conversion() {
    let router = Router::new(&[
        rule("int(event.data.n) > 7", "/big"),
        rule(
            r#"int(event.data.n) > 3 && event.data.name == "bolt""#,
            "/medium",
        ),
        rule("", "/small"),
    ])
    .unwrap();
    assert_eq!(router.route(&widget()).unwrap(), Some("/medium"));
    let small = event(r#"{"data":{"n":1,"name":"bolt"}}"#);
    assert_eq!(router.route(&small).unwrap(), Some("/small"));
    let big = event(r#"{"data":{"n":12,"name":"nut"}}"#);
    assert_eq!(router.route(&big).unwrap(), Some("/big"));
}

#[test]
fn numbers_are_doubles_like_daprd() {
    let router = Router::new(&[rule("event.data.n == 5.0", "/five")]).unwrap();
    assert_eq!(router.route(&widget()).unwrap(), Some("/five"));
    let router = Router::new(&[rule("type(event.data.n) == double", "/double")]).unwrap();
    assert_eq!(router.route(&widget()).unwrap(), Some("/double"));
}

#[test]
fn lists_maps_and_macros_work() {
    let router = Router::new(&[rule(
        r#""b" in event.data.tags && event.data.nested.x"#,
        "/tagged",
    )])
    .unwrap();
    assert_eq!(router.route(&widget()).unwrap(), Some("/tagged"));
    let router = Router::new(&[rule(
        r#"has(event.data.missing) || event.data.tags.exists(t, t == "a")"#,
        "/m",
    )])
    .unwrap();
    assert_eq!(router.route(&widget()).unwrap(), Some("/m"));
}

#[test]
fn non_bool_result_is_an_error() {
    let router = Router::new(&[rule("event.data.name", "/x"), rule("", "/default")]).unwrap();
    match router.route(&widget()) {
        Err(RouteError::NotBool { expr, got }) => {
            assert_eq!(expr, "event.data.name");
            assert_eq!(got, "string");
        }
        other => panic!("expected NotBool, got {other:?}"),
    }
}

#[test]
fn evaluation_failure_is_an_error() {
    let router = Router::new(&[
        rule("event.data.missing == 1.0", "/x"),
        rule("", "/default"),
    ])
    .unwrap();
    assert!(matches!(
        router.route(&widget()),
        Err(RouteError::Eval { .. })
    ));
    let unknown = Router::new(&[rule("other.type == \"x\"", "/x")]).unwrap();
    assert!(matches!(
        unknown.route(&widget()),
        Err(RouteError::Eval { .. })
    ));
}

#[test]
fn invalid_expression_fails_to_compile() {
    let err = Router::new(&[rule("", "/ok"), rule("event.type ==", "/broken")]).unwrap_err();
    match err {
        RouteError::Compile { index, path, .. } => {
            assert_eq!(index, 1);
            assert_eq!(path, "/broken");
        }
        other => panic!("expected Compile, got {other:?}"),
    }
    assert!(check_expression("event.type == ").is_err());
    assert!(check_expression(r#"event.type == "x""#).is_ok());
    assert!(check_expression("").is_ok());
}

#[test]
fn routes_an_envelope_built_on_publish() {
    let metadata: crate::broker::Metadata =
        [("cloudevent.tenantid".to_owned(), "acme".to_owned())].into();
    let envelope = crate::envelope::build(&crate::envelope::PublishInput {
        app_id: "checkout",
        pubsub_name: "pubsub",
        topic: "orders",
        data: br#"{"total":42}"#,
        content_type: Some("application/json"),
        metadata: &metadata,
        traceparent: None,
        tracestate: None,
        native_ttl: false,
        partition_key_attribute: None,
    })
    .unwrap();
    let router = Router::new(&[
        rule(
            r#"event.tenantid == "acme" && int(event.data.total) >= 40"#,
            "/acme-big",
        ),
        rule("", "/default"),
    ])
    .unwrap();
    let event = decode(&envelope.data).unwrap();
    assert_eq!(router.route(&event).unwrap(), Some("/acme-big"));
}

#[test]
fn doubles_compare_with_int_literals() {
    let router = Router::new(&[rule("event.data.n > 3 && event.data.n == 5", "/x")]).unwrap();
    assert_eq!(router.route(&widget()).unwrap(), Some("/x"));
}
