//! `kind: Component` documents → [`ComponentSpec`]: metadata list, secrets,
//! templates, `consumerID`, and the factory's own `validate`.

use std::collections::BTreeSet;

use serde_yaml_ng::Value;

use super::documents::{self, describe, get, items, scalar};
use super::{ComponentTypes, Header, LoadEnv, Sink};
use crate::config::metadata::{Metadata, SECRET_MASK};
use crate::config::model::ComponentSpec;

/// A component as read, before cross-document checks.
#[derive(Debug, Clone)]
pub(crate) struct ParsedComponent {
    /// The resolved spec.
    pub spec: ComponentSpec,
}

/// Reads one pubsub component. Returns `None` when it has errors (already
/// pushed to `sink`), so later checks do not pile up on a broken resource.
pub(crate) fn parse(
    header: &Header,
    type_name: &str,
    value: &Value,
    env: &LoadEnv,
    types: &dyn ComponentTypes,
    sink: &mut Sink,
) -> Option<ParsedComponent> {
    let errors_before = sink.errors.len();
    if !types.type_names().contains(&type_name) {
        sink.error(
            header,
            "spec.type",
            type_name,
            format!(
                "unknown pubsub type; known types: {}",
                types.type_names().join(", ")
            ),
        );
        return None;
    }
    let version = match documents::path(value, "spec.version").map(scalar) {
        None => "v1".to_string(),
        Some(Some(v)) if v.is_empty() => "v1".to_string(),
        Some(Some(v)) => v,
        Some(None) => {
            sink.error(
                header,
                "spec.version",
                "<map>",
                "must be a string such as v1",
            );
            "v1".to_string()
        }
    };
    let (mut metadata, secrets, namespaced) = read_metadata(header, value, env, sink);
    if let Some(key) = namespaced {
        // daprd also prefixes every topic of such a component with the
        // namespace; say so, since topic names are what operators debug.
        sink.warn(
            header,
            &format!("spec.metadata.{key}"),
            "{namespace}",
            "expanded to <namespace>.<appID>; daprd additionally prefixes every topic of this component with the namespace",
        );
    }
    if !env.app_id.is_empty()
        && !metadata
            .keys()
            .any(|k| k.eq_ignore_ascii_case("consumerID"))
    {
        metadata.insert("consumerID".to_string(), env.app_id.clone());
    }
    let spec = ComponentSpec {
        name: header.name.clone(),
        type_name: type_name.to_string(),
        version,
        metadata,
        scopes: header.scopes.clone(),
        source: header.file.clone(),
    };
    #[allow(unused_mut)] // mutated only with the outbox (embedded feature)
    let mut validation = types.validate(&spec).unwrap_or_default();
    // The outbox keys are common to every component type (the runtime
    // wraps the component), so they are checked here, not by factories.
    #[cfg(feature = "embedded")]
    validation
        .errors
        .extend(crate::config::outbox::metadata_problems(&spec));
    let mask = |key: &str, value: &str| {
        if secrets.contains(key) {
            SECRET_MASK.to_string()
        } else {
            value.to_string()
        }
    };
    for p in &validation.errors {
        sink.error(
            header,
            &format!("spec.metadata.{}", p.key),
            &mask(&p.key, &p.value),
            p.reason.clone(),
        );
    }
    for p in &validation.warnings {
        sink.warn(
            header,
            &format!("spec.metadata.{}", p.key),
            &mask(&p.key, &p.value),
            p.reason.clone(),
        );
    }
    (sink.errors.len() == errors_before).then_some(ParsedComponent { spec })
}

/// `spec.metadata` → flat map, the set of keys that hold secrets, and the
/// first key whose value used `{namespace}`.
fn read_metadata(
    header: &Header,
    value: &Value,
    env: &LoadEnv,
    sink: &mut Sink,
) -> (Metadata, BTreeSet<String>, Option<String>) {
    let mut metadata = Metadata::new();
    let mut secrets = BTreeSet::new();
    let mut namespaced = None;
    let list = documents::path(value, "spec.metadata");
    if let Some(list) = list {
        if !matches!(list, Value::Sequence(_) | Value::Null) {
            sink.error(
                header,
                "spec.metadata",
                &describe(list),
                "must be a list of {name, value} items",
            );
        }
    }
    for (i, item) in list.map(items).unwrap_or_default().iter().enumerate() {
        let Some(name) = get(item, "name").and_then(scalar).filter(|n| !n.is_empty()) else {
            sink.error(
                header,
                &format!("spec.metadata[{i}].name"),
                "",
                "is required",
            );
            continue;
        };
        let field = format!("spec.metadata.{name}");
        if metadata.contains_key(&name) {
            sink.error(header, &field, "", "metadata key given twice");
            continue;
        }
        let resolved = if let Some(secret_ref) = get(item, "secretKeyRef") {
            let secret_name = get(secret_ref, "name").and_then(scalar).unwrap_or_default();
            let key = get(secret_ref, "key").and_then(scalar).unwrap_or_default();
            match env.secrets.resolve(&secret_name, &key) {
                Ok(secret) => {
                    secrets.insert(name.clone());
                    secret
                }
                Err(e) => {
                    sink.error(
                        header,
                        &format!("{field}.secretKeyRef"),
                        SECRET_MASK,
                        e.to_string(),
                    );
                    continue;
                }
            }
        } else {
            match get(item, "value") {
                None => String::new(),
                Some(v) => match scalar(v) {
                    Some(s) => {
                        if crate::config::template::uses_namespace(&s) && namespaced.is_none() {
                            namespaced = Some(name.clone());
                        }
                        env.templates.render(&s)
                    }
                    // daprd's DynamicValue turns structured values into JSON.
                    None => serde_json::to_string(v).unwrap_or_else(|_| describe(v)),
                },
            }
        };
        metadata.insert(name, resolved);
    }
    (metadata, secrets, namespaced)
}
