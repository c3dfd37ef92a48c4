//! `kind: Subscription` (v1alpha1 and v2alpha1) → [`SubscriptionSpec`], with
//! routes normalised to rules (default route last, empty match).

use serde_yaml_ng::Value;

use super::documents::{self, describe, entries, get, items, scalar};
use super::{Header, Sink};
use crate::config::cel;
use crate::config::metadata::{parse_go_bool, Metadata};
use crate::config::model::{BulkSubscribe, RouteRule, SubscriptionKind, SubscriptionSpec};
use crate::config::subscription::SubscriptionOptions;

/// Largest `bulkSubscribe.maxMessagesCount` we accept.
const MAX_BULK_MESSAGES: i64 = 10_000;

/// Reads one subscription; `None` when it has errors (pushed to `sink`).
pub(crate) fn parse(header: &Header, value: &Value, sink: &mut Sink) -> Option<SubscriptionSpec> {
    let errors_before = sink.errors.len();
    let required = |sink: &mut Sink, field: &str| -> String {
        match documents::path(value, field).map(scalar) {
            Some(Some(s)) if !s.is_empty() => s,
            Some(None) => {
                sink.error(header, field, "", "must be a string");
                String::new()
            }
            _ => {
                sink.error(header, field, "", "is required");
                String::new()
            }
        }
    };
    let pubsub_name = required(sink, "spec.pubsubname");
    let topic = required(sink, "spec.topic");
    let rules = routes(header, value, sink);
    let dead_letter_topic = documents::path(value, "spec.deadLetterTopic")
        .and_then(scalar)
        .filter(|s| !s.is_empty());
    let bulk = bulk_subscribe(header, value, sink);
    let metadata = metadata(header, value, sink);
    // The parser delivery uses when the subscription starts, so what
    // passes here runs there.
    if let Err(v) = SubscriptionOptions::parse(&metadata, dead_letter_topic.is_some()) {
        for p in v.errors {
            sink.error(
                header,
                &format!("spec.metadata.{}", p.key),
                &p.value,
                p.reason,
            );
        }
    }
    (sink.errors.len() == errors_before).then(|| SubscriptionSpec {
        name: header.name.clone(),
        pubsub_name,
        topic,
        rules,
        dead_letter_topic,
        metadata,
        bulk,
        scopes: header.scopes.clone(),
        kind: SubscriptionKind::Declarative,
    })
}

/// v1alpha1 `spec.route`, v2alpha1 `spec.routes.{rules,default}` → rules.
fn routes(header: &Header, value: &Value, sink: &mut Sink) -> Vec<RouteRule> {
    let spec = get(value, "spec");
    let field_of = |name: &str| spec.and_then(|s| get(s, name));
    let mut rules = Vec::new();
    let v2 = header.api_version == "dapr.io/v2alpha1";
    let (used, ignored) = if v2 {
        ("routes", "route")
    } else {
        ("route", "routes")
    };
    if field_of(ignored).is_some() {
        sink.warn(
            header,
            &format!("spec.{ignored}"),
            "",
            format!("not a field of {}; use spec.{used}", header.api_version),
        );
    }
    if v2 {
        if let Some(r) = field_of("routes") {
            for (i, rule) in get(r, "rules")
                .map(items)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let field = format!("spec.routes.rules[{i}]");
                let match_expr = get(rule, "match").and_then(scalar).unwrap_or_default();
                let path = get(rule, "path").and_then(scalar).unwrap_or_default();
                if path.is_empty() {
                    sink.error(header, &format!("{field}.path"), "", "is required");
                }
                if let Err(reason) = cel::check(&match_expr) {
                    sink.error(header, &format!("{field}.match"), &match_expr, reason);
                }
                rules.push(RouteRule { match_expr, path });
            }
            if let Some(default) = get(r, "default").and_then(scalar).filter(|d| !d.is_empty()) {
                rules.push(RouteRule {
                    match_expr: String::new(),
                    path: default,
                });
            }
        }
    } else if let Some(route) = field_of("route").and_then(scalar).filter(|r| !r.is_empty()) {
        rules.push(RouteRule {
            match_expr: String::new(),
            path: route,
        });
    }
    if rules.is_empty() {
        let field = if v2 { "spec.routes" } else { "spec.route" };
        sink.error(header, field, "", "at least one route is required");
    }
    rules
}

fn bulk_subscribe(header: &Header, value: &Value, sink: &mut Sink) -> BulkSubscribe {
    let mut bulk = BulkSubscribe::default();
    let Some(section) = documents::path(value, "spec.bulkSubscribe") else {
        return bulk;
    };
    if let Some(v) = get(section, "enabled") {
        let raw = describe(v);
        match parse_go_bool(&raw) {
            Some(b) => bulk.enabled = b,
            None => sink.error(
                header,
                "spec.bulkSubscribe.enabled",
                &raw,
                "must be true or false",
            ),
        }
    }
    if let Some(v) = get(section, "maxMessagesCount") {
        let raw = describe(v);
        match raw.parse::<i64>() {
            Ok(n) if (1..=MAX_BULK_MESSAGES).contains(&n) => bulk.max_messages_count = n as u32,
            _ => sink.error(
                header,
                "spec.bulkSubscribe.maxMessagesCount",
                &raw,
                format!("must be an integer from 1 to {MAX_BULK_MESSAGES}"),
            ),
        }
    }
    if let Some(v) = get(section, "maxAwaitDurationMs") {
        let raw = describe(v);
        match raw.parse::<u64>() {
            Ok(n) => bulk.max_await_duration_ms = n,
            Err(_) => sink.error(
                header,
                "spec.bulkSubscribe.maxAwaitDurationMs",
                &raw,
                "must be a non-negative integer (milliseconds)",
            ),
        }
    }
    bulk
}

fn metadata(header: &Header, value: &Value, sink: &mut Sink) -> Metadata {
    let mut out = Metadata::new();
    let Some(section) = documents::path(value, "spec.metadata") else {
        return out;
    };
    if !documents::is_mapping(section) && !matches!(section, Value::Null) {
        sink.error(
            header,
            "spec.metadata",
            &describe(section),
            "must be a map of strings",
        );
        return out;
    }
    for (key, v) in entries(section) {
        match scalar(v) {
            Some(s) => {
                out.insert(key, s);
            }
            None => sink.error(
                header,
                &format!("spec.metadata.{key}"),
                &describe(v),
                "must be a string",
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn parse_yaml(api_version: &str, spec: &str) -> (Option<SubscriptionSpec>, Sink) {
        let header = Header {
            file: PathBuf::from("s.yaml"),
            label: "Subscription/s".into(),
            api_version: api_version.into(),
            name: "s".into(),
            scopes: Vec::new(),
        };
        let value: Value = serde_yaml_ng::from_str(spec).unwrap_or_else(|e| panic!("{e}"));
        let mut sink = Sink::default();
        (parse(&header, &value, &mut sink), sink)
    }

    #[test]
    fn fields_of_the_other_version_are_ignored_with_a_warning() {
        let (sub, sink) = parse_yaml(
            "dapr.io/v2alpha1",
            "spec: {pubsubname: p, topic: t, route: /old, routes: {default: /new}}",
        );
        let sub = sub.unwrap_or_else(|| panic!("{:?}", sink.errors));
        assert_eq!(
            sub.rules,
            [RouteRule {
                match_expr: String::new(),
                path: "/new".into()
            }]
        );
        assert_eq!(sink.warnings.len(), 1);
        assert_eq!(sink.warnings[0].field, "spec.route");

        let (sub, sink) = parse_yaml(
            "dapr.io/v1alpha1",
            "spec: {pubsubname: p, topic: t, routes: {default: /new}}",
        );
        assert!(sub.is_none());
        let fields: Vec<&str> = sink.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["spec.route"]);
        assert_eq!(sink.warnings[0].field, "spec.routes");
    }

    #[test]
    fn rule_without_path_and_structured_metadata_are_errors() {
        let (sub, sink) = parse_yaml(
            "dapr.io/v2alpha1",
            "spec: {pubsubname: p, topic: t, routes: {rules: [{match: 'true'}]}, metadata: {a: [1]}, bulkSubscribe: {enabled: maybe, maxAwaitDurationMs: -1}}",
        );
        assert!(sub.is_none());
        let fields: Vec<&str> = sink.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.routes.rules[0].path",
                "spec.bulkSubscribe.enabled",
                "spec.bulkSubscribe.maxAwaitDurationMs",
                "spec.metadata.a"
            ]
        );
    }
}
