//! Which offsets a consumer may commit when work finishes out of order.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
struct Partition {
    in_flight: BTreeSet<i64>,
    /// One past the highest offset acked.
    next: i64,
}

/// Tracks received and acked offsets per (topic, partition).
#[derive(Debug, Default)]
pub struct OffsetTracker {
    parts: BTreeMap<(String, i32), Partition>,
}

impl OffsetTracker {
    /// A message was received.
    pub fn received(&mut self, topic: &str, partition: i32, offset: i64) {
        let p = self.parts.entry((topic.to_owned(), partition)).or_default();
        p.in_flight.insert(offset);
    }

    /// A message is done.
    pub fn acked(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(p) = self.parts.get_mut(&(topic.to_owned(), partition)) {
            p.in_flight.remove(&offset);
            p.next = p.next.max(offset + 1);
        }
    }

    /// Messages received and not acked.
    pub fn in_flight(&self) -> usize {
        self.parts.values().map(|p| p.in_flight.len()).sum()
    }

    /// Forgets a partition (it was revoked: its new owner commits it).
    pub fn forget(&mut self, topic: &str, partition: i32) {
        self.parts.remove(&(topic.to_owned(), partition));
    }

    /// The position to commit per partition (the next offset to consume):
    /// the first offset still in flight, or one past the highest acked.
    /// Partitions with nothing acked yet are left out.
    pub fn committable(&self) -> Vec<(String, i32, i64)> {
        self.parts
            .iter()
            .filter(|(_, p)| p.next > 0)
            .map(|((t, part), p)| {
                let pos = p.in_flight.first().map_or(p.next, |f| (*f).min(p.next));
                (t.clone(), *part, pos)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_stop_at_the_first_unfinished_message() {
        let mut t = OffsetTracker::default();
        for o in 10..15 {
            t.received("a", 0, o);
        }
        t.received("a", 1, 7);
        assert!(t.committable().is_empty(), "nothing acked yet");
        t.acked("a", 0, 12);
        t.acked("a", 0, 13);
        assert_eq!(t.committable(), vec![("a".into(), 0, 10)]);
        t.acked("a", 0, 10);
        t.acked("a", 0, 11);
        assert_eq!(t.committable(), vec![("a".into(), 0, 14)]);
        t.acked("a", 0, 14);
        t.acked("a", 1, 7);
        assert_eq!(
            t.committable(),
            vec![("a".into(), 0, 15), ("a".into(), 1, 8)]
        );
        assert_eq!(t.in_flight(), 0);
        t.forget("a", 1);
        assert_eq!(t.committable().len(), 1);
    }
}
