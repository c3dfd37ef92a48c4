//! `GetMetadata`, `SetMetadata` and `Shutdown`, from the same snapshot and
//! signals as the HTTP edge.

use tonic::{Request, Response};

use crate::api::error::ApiError;
use crate::api::metadata::{set_attribute, snapshot};
use crate::config::model::{SubscriptionKind, SubscriptionSpec};
use crate::proto::{
    AppConnectionProperties, GetMetadataResponse, PubsubSubscription, PubsubSubscriptionRule,
    PubsubSubscriptionRules, PubsubSubscriptionType, RegisteredComponents, SetMetadataRequest,
};
use crate::runtime::Runtime;

/// gRPC metadata key that turns `Shutdown` into an immediate exit, as the
/// HTTP header of the same name does.
const FORCE_KEY: &str = "dapr-force-shutdown";

fn subscription(sub: &SubscriptionSpec) -> PubsubSubscription {
    let kind = match sub.kind {
        SubscriptionKind::Declarative => PubsubSubscriptionType::Declarative,
        SubscriptionKind::Programmatic => PubsubSubscriptionType::Programmatic,
        SubscriptionKind::Streaming => PubsubSubscriptionType::Streaming,
    };
    PubsubSubscription {
        pubsub_name: sub.pubsub_name.clone(),
        topic: sub.topic.clone(),
        metadata: sub.metadata.clone().into_iter().collect(),
        rules: Some(PubsubSubscriptionRules {
            rules: sub
                .rules
                .iter()
                .map(|r| PubsubSubscriptionRule {
                    r#match: r.match_expr.clone(),
                    path: r.path.clone(),
                })
                .collect(),
        }),
        dead_letter_topic: sub.dead_letter_topic.clone().unwrap_or_default(),
        r#type: kind as i32,
    }
}

/// `GetMetadata`.
pub(super) fn get_metadata(rt: &Runtime) -> GetMetadataResponse {
    let snap = snapshot(rt);
    GetMetadataResponse {
        id: snap.id,
        registered_components: snap
            .components
            .into_iter()
            .map(|c| RegisteredComponents {
                name: c.name,
                r#type: c.type_name,
                version: c.version,
                capabilities: c.capabilities.into_iter().map(String::from).collect(),
            })
            .collect(),
        extended_metadata: snap.extended.into_iter().collect(),
        subscriptions: snap.subscriptions.iter().map(subscription).collect(),
        app_connection_properties: Some(AppConnectionProperties {
            port: i32::from(snap.app.port),
            protocol: snap.app.protocol.to_string(),
            channel_address: snap.app.channel_address,
            max_concurrency: i32::try_from(snap.app.max_concurrency).unwrap_or(i32::MAX),
            health: None,
        }),
        runtime_version: snap.runtime_version,
        enabled_features: Vec::new(),
    }
}

/// `SetMetadata`.
pub(super) fn set_metadata(rt: &Runtime, req: SetMetadataRequest) -> Result<(), ApiError> {
    set_attribute(rt, req.key, req.value)
}

/// `Shutdown`: graceful unless `dapr-force-shutdown: true` is in the call's
/// metadata; answers at once, as daprd does.
pub(super) fn shutdown<T>(rt: &Runtime, req: &Request<T>) -> Response<()> {
    let force = req
        .metadata()
        .get(FORCE_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::envelope::parse_bool)
        .unwrap_or(false);
    if force {
        tracing::warn!("Forced shutdown requested through the gRPC API.");
        rt.force_shutdown.cancel();
    } else {
        tracing::info!("Graceful shutdown requested through the gRPC API.");
        rt.shutdown.cancel();
    }
    Response::new(())
}
