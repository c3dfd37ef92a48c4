//! daprd's gRPC API (`dapr.proto.runtime.v1.Dapr`), served with tonic beside
//! the HTTP API on `--dapr-grpc-port`.
//!
//! - `publish.rs`: `PublishEvent`, `BulkPublishEvent(Alpha1)`
//! - `subscribe_stream.rs`: `SubscribeTopicEventsAlpha1`
//! - `metadata.rs`: `GetMetadata`, `SetMetadata`, `Shutdown`
//! - `status.rs`: [`ApiError`](crate::api::ApiError) → `tonic::Status`
//! - the generated messages and services live in [`crate::proto`]
//!
//! Methods of daprd's `Dapr` service that are not pub/sub, and other
//! services, answer UNIMPLEMENTED. With `DAPR_API_TOKEN` set, every call
//! must carry metadata `dapr-api-token` (else UNAUTHENTICATED).

mod metadata;
mod publish;
pub mod status;
mod subscribe_stream;

/// The generated protos, re-exported for clients of this API (tests, the
/// bench); sidebus itself names them as [`crate::proto`].
pub use crate::proto;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};
use tower::ServiceExt;

use crate::api::http::{constant_time_eq, API_TOKEN_HEADER};
use crate::proto::dapr_server::{Dapr, DaprServer};
use crate::proto::{
    BulkPublishRequest, BulkPublishResponse, GetMetadataRequest, GetMetadataResponse,
    PublishEventRequest, SetMetadataRequest, ShutdownRequest, SubscribeTopicEventsRequestAlpha1,
};
use crate::runtime::Runtime;

/// The `Dapr` service over a runtime.
#[derive(Debug, Clone)]
pub struct DaprApi {
    rt: Arc<Runtime>,
}

impl DaprApi {
    /// The service for `rt`.
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self { rt }
    }
}

#[tonic::async_trait]
impl Dapr for DaprApi {
    async fn publish_event(
        &self,
        request: Request<PublishEventRequest>,
    ) -> Result<Response<()>, Status> {
        publish::publish_event(&self.rt, request).await
    }

    async fn bulk_publish_event(
        &self,
        request: Request<BulkPublishRequest>,
    ) -> Result<Response<BulkPublishResponse>, Status> {
        publish::bulk_publish(&self.rt, request).await
    }

    async fn bulk_publish_event_alpha1(
        &self,
        request: Request<BulkPublishRequest>,
    ) -> Result<Response<BulkPublishResponse>, Status> {
        publish::bulk_publish(&self.rt, request).await
    }

    type SubscribeTopicEventsAlpha1Stream = subscribe_stream::EventStream;

    async fn subscribe_topic_events_alpha1(
        &self,
        request: Request<Streaming<SubscribeTopicEventsRequestAlpha1>>,
    ) -> Result<Response<Self::SubscribeTopicEventsAlpha1Stream>, Status> {
        let stream = subscribe_stream::subscribe(self.rt.clone(), request.into_inner()).await?;
        Ok(Response::new(stream))
    }

    async fn get_metadata(
        &self,
        _request: Request<GetMetadataRequest>,
    ) -> Result<Response<GetMetadataResponse>, Status> {
        Ok(Response::new(metadata::get_metadata(&self.rt)))
    }

    async fn set_metadata(
        &self,
        request: Request<SetMetadataRequest>,
    ) -> Result<Response<()>, Status> {
        metadata::set_metadata(&self.rt, request.into_inner())?;
        Ok(Response::new(()))
    }

    async fn shutdown(&self, request: Request<ShutdownRequest>) -> Result<Response<()>, Status> {
        Ok(metadata::shutdown(&self.rt, &request))
    }
}

/// The token check every call goes through (a no-op without a token).
#[derive(Debug, Clone)]
pub struct TokenCheck {
    expected: Option<Arc<str>>,
}

impl tonic::service::Interceptor for TokenCheck {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = self.expected.as_deref() else {
            return Ok(req);
        };
        let given = req
            .metadata()
            .get(API_TOKEN_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if constant_time_eq(given, expected.as_bytes()) {
            Ok(req)
        } else {
            Err(Status::from(crate::api::ApiError::Unauthorized))
        }
    }
}

/// The `Dapr` methods sidebus serves; every other path answers
/// UNIMPLEMENTED with a message saying so.
const SERVED: &[&str] = &[
    "PublishEvent",
    "BulkPublishEvent",
    "BulkPublishEventAlpha1",
    "SubscribeTopicEventsAlpha1",
    "GetMetadata",
    "SetMetadata",
    "Shutdown",
];

/// The `Dapr` service with the token check and the body limit applied.
pub fn service(rt: Arc<Runtime>) -> InterceptedService<DaprServer<DaprApi>, TokenCheck> {
    let check = TokenCheck {
        expected: rt
            .settings
            .api_token
            .as_ref()
            .map(|t| t.expose())
            .filter(|t| !t.is_empty())
            .map(Arc::from),
    };
    let limit = rt.settings.max_body_size;
    let server = DaprServer::new(DaprApi::new(rt))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(usize::MAX);
    InterceptedService::new(server, check)
}

/// The routes of the gRPC API: each served method, and a fallback that
/// names what is not served (tonic's own answer has no message).
pub fn routes(rt: Arc<Runtime>) -> Routes {
    let svc = service(rt)
        .map_request(|req: http::Request<axum::body::Body>| req.map(tonic::body::Body::new));
    let mut router = axum::Router::new();
    for method in SERVED {
        router = router.route_service(
            &format!("/{}/{method}", DaprServer::<DaprApi>::NAME),
            svc.clone(),
        );
    }
    Routes::from(router.fallback(not_served))
}

async fn not_served(uri: http::Uri) -> http::Response<tonic::body::Body> {
    tracing::debug!(path = %uri.path(), "gRPC method not served.");
    Status::unimplemented(format!(
        "{} is not served by sidebus: only the pub/sub methods of dapr.proto.runtime.v1.Dapr are",
        uri.path()
    ))
    .into_http()
}

/// Serves the gRPC API on every listener until `shutdown` is cancelled,
/// then stops accepting and lets in-flight calls finish.
pub async fn serve(
    runtime: Arc<Runtime>,
    listeners: Vec<TcpListener>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "gRPC API listening.");
        }
        let router = tonic::transport::Server::builder().add_routes(routes(runtime.clone()));
        // The builder's `tcp_nodelay` is ignored for a listener we bound
        // ourselves (tonic's docs say so), so set it on the incoming stream:
        // otherwise Nagle may hold back the small trailer frame of an answer.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let stop = shutdown.clone();
        servers.spawn(async move {
            router
                .serve_with_incoming_shutdown(incoming, async move { stop.cancelled_owned().await })
                .await
        });
    }
    let mut result = Ok(());
    while let Some(done) = servers.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::error!(error = %err, "gRPC API server failed.");
                shutdown.cancel();
                if result.is_ok() {
                    result = Err(err);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "gRPC API task failed.");
                shutdown.cancel();
            }
        }
    }
    tracing::info!("gRPC API stopped.");
    result
}
