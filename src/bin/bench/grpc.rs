//! gRPC publishing through daprd's `dapr.proto.runtime.v1.Dapr` service,
//! with the client generated into the library.

use std::sync::Arc;

use bytes::Bytes;
use sidebus::proto::dapr_client::DaprClient;
use sidebus::proto::PublishEventRequest;
use tonic::transport::{Channel, Endpoint};

use crate::load::LoadError;

/// `n` clients to `127.0.0.1:port`, each on its own HTTP/2 connection, so a
/// worker index maps to one connection (as the HTTP pool does).
pub async fn clients(port: u16, n: usize) -> Result<Arc<Vec<DaprClient<Channel>>>, LoadError> {
    let endpoint = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .map_err(|e| LoadError::Grpc(e.to_string()))?
        .tcp_nodelay(true);
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| LoadError::Grpc(e.to_string()))?;
        v.push(DaprClient::new(channel));
    }
    Ok(Arc::new(v))
}

/// `PublishEvent` of one JSON event to `topic` on component `pubsub`.
pub async fn publish(
    client: &DaprClient<Channel>,
    topic: &str,
    body: Bytes,
) -> Result<(), LoadError> {
    let req = PublishEventRequest {
        pubsub_name: "pubsub".into(),
        topic: topic.into(),
        data: body.to_vec(),
        data_content_type: "application/json".into(),
        metadata: Default::default(),
    };
    // A clone shares the channel: cheap, and `publish_event` needs `&mut`.
    client
        .clone()
        .publish_event(req)
        .await
        .map(|_| ())
        .map_err(|s| LoadError::Grpc(s.to_string()))
}
