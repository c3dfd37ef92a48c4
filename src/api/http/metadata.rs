//! `GET /v1.0/metadata` (daprd's JSON shape, empty fields omitted; the JS
//! SDK uses it as its health check) and `PUT /v1.0/metadata/{key}`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::Json;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::read_body;
use crate::api::error::ApiError;
use crate::config::model::SubscriptionSpec;
use crate::runtime::Runtime;

/// The daprd release whose API sidebus mirrors, reported as the extended
/// attribute `daprRuntimeVersion` (tools compare it to pick API versions).
pub const DAPR_COMPATIBLE_VERSION: &str = "1.18.3";

/// Inserts `value` under `key` unless it is empty (Go's `omitempty`).
fn put_nonempty(obj: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Bool(b) => !b,
    };
    if !empty {
        obj.insert(key.to_string(), value);
    }
}

fn subscription_json(sub: &SubscriptionSpec) -> Value {
    let rules: Vec<Value> = sub
        .rules
        .iter()
        .map(|r| {
            let mut rule = Map::new();
            put_nonempty(&mut rule, "match", Value::from(r.match_expr.as_str()));
            put_nonempty(&mut rule, "path", Value::from(r.path.as_str()));
            Value::Object(rule)
        })
        .collect();
    let mut obj = Map::new();
    put_nonempty(
        &mut obj,
        "pubsubname",
        Value::from(sub.pubsub_name.as_str()),
    );
    put_nonempty(&mut obj, "topic", Value::from(sub.topic.as_str()));
    put_nonempty(&mut obj, "metadata", json!(sub.metadata));
    put_nonempty(&mut obj, "rules", Value::Array(rules));
    put_nonempty(
        &mut obj,
        "deadLetterTopic",
        Value::from(sub.dead_letter_topic.clone().unwrap_or_default()),
    );
    put_nonempty(&mut obj, "type", Value::from(sub.kind.as_str()));
    Value::Object(obj)
}

/// The metadata document for `rt`.
pub(crate) fn metadata_json(rt: &Runtime) -> Value {
    let components: Vec<Value> = rt
        .components
        .values()
        .map(|c| {
            let caps: Vec<&str> = c.pubsub.features().iter().map(|f| f.as_str()).collect();
            let mut obj = Map::new();
            put_nonempty(&mut obj, "name", Value::from(c.spec.name.as_str()));
            put_nonempty(&mut obj, "type", Value::from(c.spec.type_name.as_str()));
            put_nonempty(&mut obj, "version", Value::from(c.spec.version.as_str()));
            put_nonempty(&mut obj, "capabilities", json!(caps));
            Value::Object(obj)
        })
        .collect();
    let mut extended: Map<String, Value> = rt
        .extended_metadata
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    extended.insert(
        "daprRuntimeVersion".into(),
        Value::from(DAPR_COMPATIBLE_VERSION),
    );
    let subscriptions: Vec<Value> = rt
        .subscriptions
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(subscription_json)
        .collect();

    let s = &rt.settings;
    let mut app = Map::new();
    put_nonempty(&mut app, "port", json!(s.app_port.unwrap_or(0)));
    put_nonempty(&mut app, "protocol", Value::from(s.app_protocol.as_str()));
    put_nonempty(
        &mut app,
        "channelAddress",
        Value::from(s.app_channel_address.as_str()),
    );
    put_nonempty(
        &mut app,
        "maxConcurrency",
        json!(s.app_max_concurrency.max(0)),
    );

    let mut doc = Map::new();
    put_nonempty(&mut doc, "id", Value::from(rt.app_id()));
    put_nonempty(
        &mut doc,
        "runtimeVersion",
        Value::from(format!("sidebus {}", env!("CARGO_PKG_VERSION"))),
    );
    put_nonempty(&mut doc, "enabledFeatures", Value::Array(Vec::new()));
    put_nonempty(&mut doc, "extended", Value::Object(extended));
    put_nonempty(&mut doc, "components", Value::Array(components));
    put_nonempty(&mut doc, "subscriptions", Value::Array(subscriptions));
    put_nonempty(&mut doc, "appConnectionProperties", Value::Object(app));
    Value::Object(doc)
}

pub(super) async fn get_metadata(State(rt): State<Arc<Runtime>>) -> Json<Value> {
    Json(metadata_json(&rt))
}

/// Stores the body as the value of extended attribute `key`.
pub(super) async fn put_metadata(
    State(rt): State<Arc<Runtime>>,
    Path(key): Path<String>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let value = read_body(body, rt.settings.max_body_size).await?;
    let value = String::from_utf8_lossy(&value).into_owned();
    tracing::debug!(%key, "Extended metadata attribute set.");
    rt.extended_metadata
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, value);
    Ok(StatusCode::NO_CONTENT)
}
