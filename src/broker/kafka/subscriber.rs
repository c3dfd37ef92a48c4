//! Maps subscriptions onto group consumers: one consumer per consumer group
//! covering all of the group's topics (adding a topic updates that
//! consumer's subscription). A second subscription to a topic the group's
//! consumer already has gets another member of the group, as a second
//! sidecar would be.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::config::KafkaConfig;
use super::group::{self, Command};
use super::state::Shared;
use crate::broker::{BrokerError, Handler, Subscription};

/// One running group consumer, as the subscriber sees it.
struct Member {
    id: u64,
    group: String,
    topics: HashSet<String>,
    cmd: mpsc::Sender<Command>,
}

/// The component's consumer side.
pub struct Subscriber {
    cfg: Arc<KafkaConfig>,
    members: Arc<Mutex<Vec<Member>>>,
    next_id: Mutex<u64>,
    restarts: Arc<AtomicU64>,
}

impl Subscriber {
    /// No consumers until the first subscription.
    pub fn new(cfg: Arc<KafkaConfig>) -> Self {
        Self {
            cfg,
            members: Arc::new(Mutex::new(Vec::new())),
            next_id: Mutex::new(0),
            restarts: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How long a subscribe waits for the group to take the topic in. Past
    /// it the subscription stands anyway and partitions arrive later.
    fn join_deadline(&self) -> Duration {
        (self.cfg.session_timeout * 3).max(Duration::from_secs(30))
    }

    /// Adds `topic` to a consumer of `group`, starting one if needed, and
    /// waits (bounded) until the group has rebalanced with it.
    pub async fn subscribe(
        &self,
        topic: String,
        group: String,
        handler: Arc<dyn Handler>,
    ) -> Result<Subscription, BrokerError> {
        let (joined_tx, joined_rx) = oneshot::channel();
        let (id, cmd) = self.member_for(&topic, &group)?;
        let add = Command::Add {
            topic: topic.clone(),
            handler,
            joined: joined_tx,
        };
        cmd.send(add).await.map_err(|_| BrokerError::Closed)?;
        match tokio::time::timeout(self.join_deadline(), joined_rx).await {
            Ok(Ok(())) => tracing::info!(topic, group, "Kafka subscription active."),
            Ok(Err(_)) => {
                return Err(BrokerError::Unavailable(format!(
                    "consumer of group {group} ended while subscribing"
                )))
            }
            Err(_) => {
                tracing::warn!(
                    topic,
                    group,
                    "Group has not rebalanced yet; partitions will follow."
                )
            }
        }
        let cancel = CancellationToken::new();
        let members = self.members.clone();
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            stop.cancelled().await;
            release(&members, id, &topic);
            let (done_tx, done_rx) = oneshot::channel();
            if cmd
                .send(Command::Remove {
                    topic,
                    done: done_tx,
                })
                .await
                .is_ok()
            {
                let _ = done_rx.await;
            }
        });
        Ok(Subscription::new(cancel, task))
    }

    /// Finds or starts the member of `group` that does not have `topic` yet.
    fn member_for(
        &self,
        topic: &str,
        group: &str,
    ) -> Result<(u64, mpsc::Sender<Command>), BrokerError> {
        // Poisoning needs a panic inside these short critical sections.
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members.retain(|m| !m.cmd.is_closed());
        if let Some(m) = members
            .iter_mut()
            .find(|m| m.group == group && !m.topics.contains(topic))
        {
            m.topics.insert(topic.to_string());
            return Ok((m.id, m.cmd.clone()));
        }
        let instance = members.iter().filter(|m| m.group == group).count();
        let shared = Arc::new(Shared::new(
            self.cfg.clone(),
            tokio::runtime::Handle::current(),
            self.restarts.clone(),
        ));
        let cmd = group::spawn(shared, group.to_string(), instance)?;
        let id = {
            let mut next = self.next_id.lock().unwrap_or_else(|e| e.into_inner());
            *next += 1;
            *next
        };
        members.push(Member {
            id,
            group: group.to_string(),
            topics: HashSet::from([topic.to_string()]),
            cmd: cmd.clone(),
        });
        Ok((id, cmd))
    }

    /// How often the watchdog restarted a consumer of this component.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Stops every group consumer and waits for their final commits.
    pub async fn close(&self) {
        let members: Vec<Member> = {
            let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
            members.drain(..).collect()
        };
        for m in members {
            let topics: Vec<String> = m.topics.into_iter().collect();
            for topic in topics {
                let (done_tx, done_rx) = oneshot::channel();
                if m.cmd
                    .send(Command::Remove {
                        topic,
                        done: done_tx,
                    })
                    .await
                    .is_ok()
                {
                    let _ = done_rx.await;
                }
            }
        }
    }
}

/// Forgets `topic` of member `id`; a member without topics is dropped from
/// the list before its consumer stops, so no new subscription picks it.
fn release(members: &Mutex<Vec<Member>>, id: u64, topic: &str) {
    let mut members = members.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = members.iter_mut().find(|m| m.id == id) {
        m.topics.remove(topic);
    }
    members.retain(|m| m.id != id || !m.topics.is_empty());
}
