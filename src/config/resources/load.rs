//! The passes over all documents: classify by kind, scope, then the checks
//! that span documents (duplicate names, subscription → component and
//! Resiliency target → component references).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_yaml_ng::Value;

use super::component::{self, ParsedComponent};
use super::documents::{self, get, scalar, Document};
use super::resiliency::ResiliencyPolicies;
use super::{in_scope, scopes_overlap, subscription, Header, LoadEnv, Loaded, Sink};
use crate::config::error::ConfigError;
use crate::config::model::{ResiliencySpec, Resources, SubscriptionSpec};

const V1ALPHA1: &str = "dapr.io/v1alpha1";
const V2ALPHA1: &str = "dapr.io/v2alpha1";

/// Loads everything; see [`super::load`].
pub(crate) fn run(
    paths: &[PathBuf],
    env: &LoadEnv,
    types: &dyn super::ComponentTypes,
) -> Result<Loaded, Vec<ConfigError>> {
    let mut sink = Sink::default();
    let docs = documents::read_all(paths, &mut sink.errors);

    let mut components: Vec<ParsedComponent> = Vec::new();
    // Every in-scope pubsub component name with its scopes and file, valid
    // or not, so a broken component does not also break its subscriptions.
    let mut declared: Vec<(Header, PathBuf)> = Vec::new();
    let mut subscriptions = Vec::new();
    let mut resiliencies = Vec::new();

    for doc in &docs {
        let Some((header, kind)) = header(doc, &mut sink) else {
            continue;
        };
        match kind.as_str() {
            "Component" => {
                if !version_ok(&header, &[V1ALPHA1], &mut sink) {
                    continue;
                }
                let type_name = get(&doc.value, "spec")
                    .and_then(|s| get(s, "type"))
                    .and_then(scalar)
                    .unwrap_or_default();
                if type_name.is_empty() {
                    sink.error(&header, "spec.type", "", "is required");
                    continue;
                }
                if !type_name.starts_with("pubsub.") {
                    sink.warn(
                        &header,
                        "spec.type",
                        &type_name,
                        "not a pubsub component; ignored",
                    );
                    continue;
                }
                if !in_scope(&header.scopes, &env.app_id) {
                    continue;
                }
                if !name_ok(&header, &mut sink) {
                    continue;
                }
                if let Some((first, file)) = declared.iter().find(|(h, _)| {
                    h.name == header.name && scopes_overlap(&h.scopes, &header.scopes)
                }) {
                    let reason = format!(
                        "duplicate component name; first defined in {}",
                        file.display()
                    );
                    sink.error(&header, "metadata.name", &first.name, reason);
                    continue;
                }
                declared.push((header.clone(), doc.file.clone()));
                if let Some(parsed) =
                    component::parse(&header, &type_name, &doc.value, env, types, &mut sink)
                {
                    components.push(parsed);
                }
            }
            "Subscription" => {
                if version_ok(&header, &[V1ALPHA1, V2ALPHA1], &mut sink)
                    && in_scope(&header.scopes, &env.app_id)
                    && name_ok(&header, &mut sink)
                {
                    if let Some(s) = subscription::parse(&header, &doc.value, &mut sink) {
                        subscriptions.push((header, s));
                    }
                }
            }
            "Resiliency" => {
                if version_ok(&header, &[V1ALPHA1], &mut sink)
                    && in_scope(&header.scopes, &env.app_id)
                    && name_ok(&header, &mut sink)
                {
                    if let Some(r) = resiliency(&header, &doc.value, &mut sink) {
                        resiliencies.push((header, r));
                    }
                }
            }
            other => sink.warn(&header, "kind", other, "not a pub/sub resource; ignored"),
        }
    }

    let subscriptions = check_subscriptions(subscriptions, &declared, &mut sink);
    check_targets(&resiliencies, &declared, &mut sink);

    // Group problems by file (stable: document order is kept within a
    // file), so the listing reads top to bottom like the folder.
    sink.errors.sort_by(|a, b| a.file.cmp(&b.file));
    sink.warnings.sort_by(|a, b| a.file.cmp(&b.file));
    if !sink.errors.is_empty() {
        tracing::debug!(
            errors = sink.errors.len(),
            warnings = sink.warnings.len(),
            "Resources are invalid."
        );
        return Err(sink.errors);
    }
    tracing::debug!(
        documents = docs.len(),
        components = components.len(),
        subscriptions = subscriptions.len(),
        resiliencies = resiliencies.len(),
        warnings = sink.warnings.len(),
        "Resources loaded."
    );
    Ok(Loaded {
        resources: Resources {
            components: components.into_iter().map(|c| c.spec).collect(),
            subscriptions,
            resiliencies: resiliencies.into_iter().map(|(_, r)| r).collect(),
        },
        warnings: sink.warnings,
    })
}

/// `kind`, `apiVersion`, `metadata.name`, `scopes`; `None` for empty
/// documents (skipped silently) and documents that are not resources.
fn header(doc: &Document, sink: &mut Sink) -> Option<(Header, String)> {
    if matches!(doc.value, Value::Null) {
        return None;
    }
    let fallback = format!("<document {}>", doc.index);
    let mut h = Header {
        file: doc.file.clone(),
        label: fallback.clone(),
        api_version: get(&doc.value, "apiVersion")
            .and_then(scalar)
            .unwrap_or_default(),
        name: documents::path(&doc.value, "metadata.name")
            .and_then(scalar)
            .unwrap_or_default(),
        scopes: Vec::new(),
    };
    if !documents::is_mapping(&doc.value) {
        sink.error(
            &h,
            "",
            "",
            "not a resource (expected a mapping with apiVersion and kind)",
        );
        return None;
    }
    let kind = get(&doc.value, "kind").and_then(scalar).unwrap_or_default();
    if kind.is_empty() {
        sink.error(&h, "kind", "", "is required");
        return None;
    }
    if !h.name.is_empty() {
        h.label = format!("{kind}/{}", h.name);
    }
    match documents::string_list(get(&doc.value, "scopes")) {
        Ok(scopes) => h.scopes = scopes,
        Err(reason) => sink.error(&h, "scopes", "", reason),
    }
    Some((h, kind))
}

fn version_ok(h: &Header, known: &[&str], sink: &mut Sink) -> bool {
    if known.contains(&h.api_version.as_str()) {
        return true;
    }
    sink.error(
        h,
        "apiVersion",
        &h.api_version,
        format!("unsupported; expected {}", known.join(" or ")),
    );
    false
}

/// Longest resource name (a DNS-1123 subdomain's limit, as Kubernetes and
/// daprd use for resource names).
const MAX_NAME_LEN: usize = 253;

/// Resource names become folder names (the embedded broker's, the outbox's)
/// and appear in URLs, so they follow the DNS-1123 shape Kubernetes gives
/// them: letters, digits, `-`, `.` and `_` (kept for self-hosted Dapr
/// folders that use it), starting and ending with a letter or digit. That
/// rules out `/`, `..` and hidden names.
fn name_ok(h: &Header, sink: &mut Sink) -> bool {
    let name = h.name.as_str();
    let reason = if name.is_empty() {
        Some("is required".to_string())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!("is longer than {MAX_NAME_LEN} characters"))
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        Some(
            "must be letters, digits, '-', '.' or '_', starting and ending with a letter or digit"
                .to_string(),
        )
    } else {
        None
    };
    match reason {
        Some(reason) => {
            sink.error(h, "metadata.name", name, reason);
            false
        }
        None => true,
    }
}

fn resiliency(h: &Header, value: &Value, sink: &mut Sink) -> Option<ResiliencySpec> {
    let raw = get(value, "spec").cloned().unwrap_or(Value::Null);
    let spec = match serde_json::to_value(&raw) {
        Ok(spec) => spec,
        Err(e) => {
            sink.error(
                h,
                "spec",
                "",
                format!("cannot be read as JSON-like data: {e}"),
            );
            return None;
        }
    };
    let (_, problems) = ResiliencyPolicies::parse(&spec);
    let ok = problems.is_empty();
    for p in problems {
        sink.error(h, &p.field, &p.value, p.reason);
    }
    ok.then(|| ResiliencySpec {
        name: h.name.clone(),
        spec,
        scopes: h.scopes.clone(),
        source: h.file.clone(),
    })
}

/// Subscriptions must name a declared component; the first declarative
/// subscription per (pubsub, topic) wins, as in daprd.
fn check_subscriptions(
    parsed: Vec<(Header, SubscriptionSpec)>,
    declared: &[(Header, PathBuf)],
    sink: &mut Sink,
) -> Vec<SubscriptionSpec> {
    let mut kept: Vec<(Header, SubscriptionSpec)> = Vec::new();
    for (h, s) in parsed {
        if !declared.iter().any(|(c, _)| c.name == s.pubsub_name) {
            let known: Vec<&str> = declared.iter().map(|(c, _)| c.name.as_str()).collect();
            let reason = format!(
                "no pubsub component with this name (declared: {})",
                list_or_none(&known)
            );
            sink.error(&h, "spec.pubsubname", &s.pubsub_name, reason);
            continue;
        }
        let first = kept.iter().find(|(fh, f)| {
            f.pubsub_name == s.pubsub_name
                && f.topic == s.topic
                && scopes_overlap(&fh.scopes, &h.scopes)
        });
        if let Some((fh, _)) = first {
            let reason = format!(
                "topic already subscribed by {} in {}; this subscription is ignored",
                fh.label,
                fh.file.display()
            );
            sink.warn(&h, "spec.topic", &s.topic, reason);
            continue;
        }
        kept.push((h, s));
    }
    kept.into_iter().map(|(_, s)| s).collect()
}

/// Resiliency targets naming absent components only warn: the same file is
/// often shared by apps with different components.
fn check_targets(
    resiliencies: &[(Header, ResiliencySpec)],
    declared: &[(Header, PathBuf)],
    sink: &mut Sink,
) {
    let names: BTreeMap<&str, ()> = declared
        .iter()
        .map(|(h, _)| (h.name.as_str(), ()))
        .collect();
    for (h, r) in resiliencies {
        let (policies, _) = ResiliencyPolicies::parse(&r.spec);
        for component in policies.components.keys() {
            if !names.contains_key(component.as_str()) {
                sink.warn(
                    h,
                    &format!("spec.targets.components.{component}"),
                    "",
                    "no pubsub component with this name is loaded; target unused",
                );
            }
        }
    }
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}
