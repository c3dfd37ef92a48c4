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
use crate::api::metadata::{set_attribute, snapshot};
use crate::config::model::SubscriptionSpec;
use crate::runtime::Runtime;

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
    let snap = snapshot(rt);
    let components: Vec<Value> = snap
        .components
        .iter()
        .map(|c| {
            let mut obj = Map::new();
            put_nonempty(&mut obj, "name", Value::from(c.name.as_str()));
            put_nonempty(&mut obj, "type", Value::from(c.type_name.as_str()));
            put_nonempty(&mut obj, "version", Value::from(c.version.as_str()));
            put_nonempty(&mut obj, "capabilities", json!(c.capabilities));
            Value::Object(obj)
        })
        .collect();
    let subscriptions: Vec<Value> = snap.subscriptions.iter().map(subscription_json).collect();
    let mut app = Map::new();
    put_nonempty(&mut app, "port", json!(snap.app.port));
    put_nonempty(&mut app, "protocol", Value::from(snap.app.protocol));
    put_nonempty(
        &mut app,
        "channelAddress",
        Value::from(snap.app.channel_address.as_str()),
    );
    put_nonempty(&mut app, "maxConcurrency", json!(snap.app.max_concurrency));

    let mut doc = Map::new();
    put_nonempty(&mut doc, "id", Value::from(snap.id));
    put_nonempty(
        &mut doc,
        "runtimeVersion",
        Value::from(snap.runtime_version),
    );
    put_nonempty(&mut doc, "enabledFeatures", Value::Array(Vec::new()));
    put_nonempty(&mut doc, "extended", json!(snap.extended));
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
    set_attribute(&rt, key, value)?;
    Ok(StatusCode::NO_CONTENT)
}
