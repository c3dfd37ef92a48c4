//! Outbound health: can publishes be accepted right now? Components are
//! built (a latch set at start-up) and each one can take an event: its
//! broker answers a ping, or it has a publish outbox that holds events
//! while the broker is away. A sidecar whose broker is unreachable is not
//! outbound-ready, so an SDK waiting on `/v1.0/healthz/outbound` does not
//! start publishing into a wall.

use std::time::Duration;

use super::Runtime;

/// How long one component's ping may take before it counts as unreachable.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

impl Runtime {
    /// `Ok` when every component can accept a publish now; else why not.
    pub async fn outbound_health(&self) -> Result<(), String> {
        if !self.readiness.outbound() {
            return Err("components are not initialized yet".into());
        }
        let pings = self.components.values().map(|c| async move {
            if c.buffers_while_away() {
                return Ok(());
            }
            match tokio::time::timeout(PING_TIMEOUT, c.pubsub.ping()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(format!(
                    "component {} cannot reach its broker: {err}",
                    c.spec.name
                )),
                Err(_) => Err(format!(
                    "component {} did not answer a ping within {PING_TIMEOUT:?}",
                    c.spec.name
                )),
            }
        });
        futures_util::future::join_all(pings)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, String>>()
            .map(drop)
    }
}
