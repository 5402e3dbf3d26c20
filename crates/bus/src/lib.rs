//! The message bus between the crawl stages: the [`Bus`] trait, the topics
//! the services exchange, an in-process [`MemoryBus`], and Kafka
//! (`KafkaBus`, rdkafka, with the `kafka` feature). Backends are chosen by URL ([`connect`]):
//! `memory://` or `kafka://HOST:PORT[,HOST:PORT]`.
//!
//! Delivery is at-least-once. A consumer [`Subscription::ack`]s a message
//! once its effects are durably stored or produced, and
//! [`Subscription::commit`] commits, per partition, everything below the
//! first message not yet acked, so work finishing out of order never
//! commits past a message still in flight.
//!
//! # Layout
//! * this file: the [`Bus`] and [`Subscription`] traits, topics, [`connect`];
//! * `memory`: the in-process bus;
//! * `kafka` (feature `kafka`): Kafka through rdkafka;
//! * `offsets`: what may be committed, per partition.

#[cfg(feature = "kafka")]
mod kafka;
mod memory;
mod offsets;

use std::sync::Arc;

use async_trait::async_trait;

#[cfg(feature = "kafka")]
pub use kafka::KafkaBus;
pub use memory::MemoryBus;
pub use offsets::OffsetTracker;

/// The topics and what they carry (payloads are `proto/` messages). Every
/// topic up to the fetchers is keyed by host, so one host belongs to one
/// partition; fetch results are keyed by the host's registrable domain, so one
/// parser handles a domain's pages, one at a time.
pub mod topics {
    /// Seed URLs (`DiscoveredUrl`, depth 0), keyed by host.
    pub const SEEDS: &str = "linkgraph.seeds";
    /// URLs found on pages (a page's URLs on one host as one
    /// `DiscoveredBatch`; hand-offs as single `DiscoveredUrl`s), keyed by
    /// the URLs' host: the frontier partition owning that host admits them.
    pub const DISCOVERED: &str = "linkgraph.discovered";
    /// Requests to fetch (`CrawlRequest`), keyed by host.
    pub const FETCH: &str = "linkgraph.fetch";
    /// Fetch results (`FetchResult`), keyed by the host's registrable domain.
    pub const PAGES: &str = "linkgraph.pages";
    /// Outcomes, once stored (`FrontierFeedback`, without discoveries),
    /// keyed by the request's host.
    pub const FEEDBACK: &str = "linkgraph.feedback";
    /// Messages that could not be decoded, with their original key.
    pub const DEAD_LETTER: &str = "linkgraph.deadletter";
}

/// One topic to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    /// The topic name.
    pub name: &'static str,
    /// Partitions: the most replicas of the consuming service that can work
    /// at once.
    pub partitions: i32,
}

/// The topics `linkgraph topics create` makes. 12 partitions let each
/// service scale to 12 consuming replicas; the dead-letter topic is read by
/// people, not services.
pub const TOPICS: [TopicSpec; 6] = [
    TopicSpec {
        name: topics::SEEDS,
        partitions: 12,
    },
    TopicSpec {
        name: topics::DISCOVERED,
        partitions: 12,
    },
    TopicSpec {
        name: topics::FETCH,
        partitions: 12,
    },
    TopicSpec {
        name: topics::PAGES,
        partitions: 12,
    },
    TopicSpec {
        name: topics::FEEDBACK,
        partitions: 12,
    },
    TopicSpec {
        name: topics::DEAD_LETTER,
        partitions: 1,
    },
];

/// One consumed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its topic.
    pub topic: String,
    /// Its key (a host name).
    pub key: String,
    /// The encoded payload.
    pub payload: Vec<u8>,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
}

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus URL is malformed or names an unknown backend.
    #[error("invalid bus url {url:?}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Kafka refused or failed an operation.
    #[cfg(feature = "kafka")]
    #[error("kafka {op} failed")]
    Kafka {
        /// What was being done.
        op: &'static str,
        /// The client's error.
        source: rdkafka::error::KafkaError,
    },
    /// Creating a topic failed.
    #[error("cannot create topic {topic:?}: {reason}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's answer.
        reason: String,
    },
    /// The bus was shut down.
    #[error("the bus is closed")]
    Closed,
}

/// A message bus backend.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Publishes one message; returns once the bus acknowledged it durably
    /// (for Kafka: written to all in-sync replicas).
    async fn publish(&self, topic: &str, key: &str, payload: Vec<u8>) -> Result<(), BusError>;
    /// Joins consumer group `group` on `topics`.
    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Subscription>, BusError>;
    /// Creates topics that do not exist yet.
    async fn create_topics(&self, specs: &[TopicSpec]) -> Result<(), BusError>;
}

/// A change of the partitions a consumer owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebalanced {
    /// These (topic, partition)s were assigned to this consumer.
    Assigned(Vec<(String, i32)>),
    /// These were taken away.
    Revoked(Vec<(String, i32)>),
}

/// The partition Kafka clients (librdkafka's default `consistent_random`
/// partitioner) put a message with this key in: CRC-32 of the key modulo the
/// partition count. Services use it to tell which hosts a partition holds.
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    let mut crc = 0xffff_ffff_u32;
    for b in key.bytes() {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    let crc = !crc;
    i32::try_from(crc % u32::try_from(partitions.max(1)).unwrap_or(1)).unwrap_or(0)
}

/// A consumer group member's stream of messages.
#[async_trait]
pub trait Subscription: Send {
    /// Partition assignment changes since the last call, in order (none for
    /// buses without consumer groups).
    fn rebalances(&mut self) -> Vec<Rebalanced> {
        Vec::new()
    }
    /// How many partitions `topic` has (1 for buses without partitions).
    async fn partition_count(&mut self, _topic: &str) -> Result<i32, BusError> {
        Ok(1)
    }
    /// The next message; `None` once the bus is closed.
    async fn recv(&mut self) -> Result<Option<Message>, BusError>;
    /// Marks a message as done: its effects are durable.
    fn ack(&mut self, m: &Message);
    /// Commits, per partition, the offsets below the first message not yet
    /// acked. Returns once the commit is acknowledged.
    async fn commit(&mut self) -> Result<(), BusError>;
}

/// Connects to a bus by URL: `memory://` (a new in-process bus) or
/// `kafka://HOST:PORT[,HOST:PORT]`.
pub fn connect(url: &str) -> Result<Arc<dyn Bus>, BusError> {
    connect_as(url, None)
}

/// Like [`connect`], joining consumer groups as the static member
/// `instance_id` when given (Kafka `group.instance.id`).
pub fn connect_as(url: &str, instance_id: Option<String>) -> Result<Arc<dyn Bus>, BusError> {
    let bad = |reason: &str| BusError::BadUrl {
        url: url.into(),
        reason: reason.into(),
    };
    match url.split_once("://") {
        Some(("memory", "")) => Ok(Arc::new(MemoryBus::default())),
        #[cfg(feature = "kafka")]
        Some(("kafka", _)) => Ok(Arc::new(
            KafkaBus::from_url(url)?.with_instance_id(instance_id),
        )),
        #[cfg(not(feature = "kafka"))]
        Some(("kafka", _)) => {
            let _ = instance_id;
            Err(bad(
                "this linkgraph was built without Kafka (enable the `kafka` cargo feature)",
            ))
        }
        Some((scheme, _)) => Err(bad(&format!(
            "unknown backend {scheme:?} (expected memory:// or kafka://)"
        ))),
        None => Err(bad("expected memory:// or kafka://HOST:PORT")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_follow_librdkafka_crc32() {
        // CRC-32 check value of "123456789" is 0xCBF43926.
        assert_eq!(
            partition_for("123456789", i32::MAX),
            (0xCBF4_3926_u32 % i32::MAX as u32) as i32
        );
        assert_eq!(
            partition_for("123456789", 12),
            (0xCBF4_3926_u32 % 12) as i32
        );
        let p = partition_for("www.example.com", 12);
        assert!((0..12).contains(&p));
        assert_eq!(partition_for("anything", 1), 0);
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn bus_urls_pick_the_backend() {
        assert!(connect("memory://").is_ok());
        assert!(connect("kafka://127.0.0.1:9092,127.0.0.1:9093").is_ok());
        for bad in ["kafka://", "kafka://host", "redis://x:1", "127.0.0.1:9092"] {
            assert!(
                matches!(connect(bad), Err(BusError::BadUrl { .. })),
                "{bad}"
            );
        }
    }
}
