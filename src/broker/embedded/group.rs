//! Consumer-group membership inside one process. Each (topic, group) keeps
//! its members in join order; partition `p` belongs to member
//! `p % members`. A partition's slot is a mutex holding the group's cursor,
//! so however assignments move, at most one member consumes a partition at
//! a time and the next owner starts where the last one committed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The group's position in one partition, owned by whoever holds the lock.
#[derive(Debug, Default)]
pub struct Slot {
    /// Next offset to deliver, once loaded from disk or resolved.
    pub next: Option<u64>,
}

/// One consumer group of one topic.
pub struct Group {
    members: watch::Sender<Vec<u64>>,
    /// Per-partition slots, by partition index.
    pub slots: Vec<Arc<tokio::sync::Mutex<Slot>>>,
}

impl Group {
    /// Watches the member list.
    pub fn watch(&self) -> watch::Receiver<Vec<u64>> {
        self.members.subscribe()
    }

    /// Removes a member; its partitions move to the others.
    pub fn leave(&self, member: u64) {
        self.members.send_modify(|m| m.retain(|x| *x != member));
    }
}

/// True when `member` should consume `partition` under `members`.
pub fn assigned(members: &[u64], partition: usize, member: u64) -> bool {
    !members.is_empty() && members[partition % members.len()] == member
}

/// Every group of every topic of one component.
#[derive(Default)]
pub struct Groups {
    groups: Mutex<HashMap<(String, String), Arc<Group>>>,
    next_member: AtomicU64,
}

impl Groups {
    /// Joins `group` on `topic` (with `partitions` partitions) as a new member.
    pub fn join(&self, topic: &str, group: &str, partitions: usize) -> (Arc<Group>, u64) {
        let member = self.next_member.fetch_add(1, Ordering::Relaxed);
        // Poisoning needs a panic in this short, panic-free section.
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        let g = groups
            .entry((topic.to_string(), group.to_string()))
            .or_insert_with(|| {
                Arc::new(Group {
                    members: watch::Sender::new(Vec::new()),
                    slots: (0..partitions).map(|_| Arc::default()).collect(),
                })
            })
            .clone();
        g.members.send_modify(|m| m.push(member));
        (g, member)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn partitions_split_between_members() {
        let members = [7, 9];
        let mine: Vec<_> = (0..4)
            .filter(|p| super::assigned(&members, *p, 9))
            .collect();
        assert_eq!(mine, [1, 3]);
        assert!(!super::assigned(&[], 0, 7));
    }
}
