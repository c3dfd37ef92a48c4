//! Per-partition offset bookkeeping: which fetched records are unfinished,
//! and how far the group may commit. The commit point is the lowest
//! unfinished offset (or one past the highest fetched record when all are
//! done), so a commit never passes an event the app has not finished —
//! whatever order events finish in.

use std::collections::BTreeSet;

/// Offsets of one assigned partition.
#[derive(Debug, Default, Clone)]
pub struct PartitionOffsets {
    unfinished: BTreeSet<i64>,
    /// One past the highest fetched offset.
    next: Option<i64>,
    /// The last offset handed to a commit.
    committed: Option<i64>,
}

impl PartitionOffsets {
    /// Records that `offset` was fetched (in fetch order) and is unfinished.
    pub fn fetched(&mut self, offset: i64) {
        self.unfinished.insert(offset);
        self.next = Some(self.next.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    /// Marks `offset` finished (acknowledged). Returns false if unknown.
    pub fn finished(&mut self, offset: i64) -> bool {
        self.unfinished.remove(&offset)
    }

    /// Fetched records not finished yet (queued, in flight, or retrying).
    pub fn unfinished(&self) -> usize {
        self.unfinished.len()
    }

    /// One past the highest fetched offset, if anything was fetched.
    pub fn next_fetch(&self) -> Option<i64> {
        self.next
    }

    /// How far the group may commit now: the next offset to read after a
    /// restart.
    pub fn commit_point(&self) -> Option<i64> {
        self.unfinished.first().copied().or(self.next)
    }

    /// The commit point if it moved since the last call; remembers it.
    pub fn take_commit(&mut self) -> Option<i64> {
        let point = self.commit_point()?;
        if self.committed.is_some_and(|c| c >= point) {
            return None;
        }
        self.committed = Some(point);
        Some(point)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_contiguous_finished_offsets() {
        let mut p = PartitionOffsets::default();
        assert_eq!(p.take_commit(), None, "nothing fetched, nothing to commit");
        for o in 10..15 {
            p.fetched(o);
        }
        assert_eq!(p.commit_point(), Some(10));
        assert!(p.finished(12));
        assert!(p.finished(13));
        assert_eq!(p.take_commit(), Some(10), "10 is unfinished");
        assert_eq!(p.take_commit(), None, "no movement, no commit");
        assert!(p.finished(10));
        assert_eq!(p.take_commit(), Some(11));
        assert!(p.finished(11));
        assert_eq!(p.take_commit(), Some(14));
        assert!(p.finished(14));
        assert_eq!(p.take_commit(), Some(15), "all done: one past the last");
        assert_eq!(p.unfinished(), 0);
        assert!(!p.finished(14), "double finish is reported");
    }

    #[test]
    fn gaps_from_compaction_do_not_block() {
        let mut p = PartitionOffsets::default();
        p.fetched(3);
        p.fetched(7);
        p.finished(3);
        assert_eq!(p.commit_point(), Some(7));
        p.finished(7);
        assert_eq!(p.commit_point(), Some(8));
        assert_eq!(p.next_fetch(), Some(8));
    }
}
