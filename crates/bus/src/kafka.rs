//! Kafka through rdkafka (librdkafka).
//!
//! * The producer is idempotent with `acks=all`: a retried send is written
//!   once, and [`Bus::publish`] returns only after every in-sync replica has
//!   it.
//! * Consumers never auto-commit: offsets move only through
//!   [`Subscription::commit`], after the service acked the work. Revoked
//!   partitions are forgotten, so a consumer never commits for a partition
//!   its new owner is working on.
//! * Consumer lag comes from librdkafka's statistics, per topic, as
//!   `linkgraph_bus_consumer_lag_messages{topic}`.
//! * Every [`PROBE_EVERY`], a consumer also looks at *every* partition of
//!   its topics, owned by it or not: whether it owns it
//!   (`linkgraph_bus_owned_partitions`), the group's committed offset
//!   (`linkgraph_bus_committed_offset_messages`) and the end offset
//!   (`linkgraph_bus_end_offset_messages`), each labelled topic and
//!   partition. A partition nobody owns, or whose end moves while its
//!   committed offset stands still, is then visible from any member (the
//!   alert rules in deploy/ fire on both), even when its own consumer died.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::{Bus, BusError, Message, OffsetTracker, Rebalanced, Subscription, TopicSpec};

/// How long a publish may wait for room in the producer's queue.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a consumer probes every partition of its topics.
pub const PROBE_EVERY: Duration = Duration::from_secs(15);

/// How long one probe request to the broker may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Consecutive probes in which a partition this member does not own has a
/// backlog and no committed progress before the member re-joins its group
/// (a minute at [`PROBE_EVERY`]).
const STALL_PROBES: u32 = 4;

/// A Kafka cluster.
pub struct KafkaBus {
    brokers: String,
    producer: FutureProducer,
    /// Replicas per partition for topics this bus creates.
    replication: i32,
    /// Stable member name for static group membership (e.g. the pod name).
    instance_id: Option<String>,
}

impl KafkaBus {
    /// A client for `brokers` (`host:port,...`); connects lazily.
    pub fn new(brokers: &str) -> Result<Self, BusError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            // Pages carry their bodies, and HTML compresses well: the
            // broker stores, copies and serves fewer bytes
            // (`make bench-distributed`: tansu's CPU per 1,000 pages
            // 0.26 -> 0.20 s; the fetcher's, which compresses, moved within
            // noise).
            .set("compression.type", "lz4")
            .set("message.timeout.ms", "60000")
            .create()
            .map_err(|source| BusError::Kafka {
                op: "create producer",
                source,
            })?;
        Ok(KafkaBus {
            brokers: brokers.to_owned(),
            producer,
            replication: 3,
            instance_id: None,
        })
    }

    /// Joins consumer groups as a static member named `id` (e.g. the pod
    /// name of a StatefulSet replica).
    pub fn with_instance_id(mut self, id: Option<String>) -> Self {
        self.instance_id = id.filter(|i| !i.is_empty());
        self
    }

    /// A client for `kafka://HOST:PORT[,HOST:PORT]`.
    pub fn from_url(url: &str) -> Result<Self, BusError> {
        let brokers = url
            .strip_prefix("kafka://")
            .map(|b| b.trim_end_matches('/'))
            .filter(|b| {
                !b.is_empty()
                    && b.split(',').all(|h| {
                        h.rsplit_once(':')
                            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
                    })
            })
            .ok_or_else(|| BusError::BadUrl {
                url: url.into(),
                reason: "expected kafka://HOST:PORT[,HOST:PORT]".into(),
            })?;
        Self::new(brokers)
    }

    /// Sets the replication factor of topics created later.
    pub fn with_replication(mut self, replicas: i32) -> Self {
        self.replication = replicas.max(1);
        self
    }
}

/// Consumer callbacks: partition changes and statistics.
struct Ctx {
    revoked: Arc<Mutex<Vec<(String, i32)>>>,
    events: Arc<Mutex<Vec<Rebalanced>>>,
}

fn elements(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for Ctx {
    fn stats(&self, stats: Statistics) {
        for (name, topic) in &stats.topics {
            let lag: i64 = topic
                .partitions
                .values()
                .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
                .map(|p| p.consumer_lag)
                .sum();
            metrics::gauge!("linkgraph_bus_consumer_lag_messages", "topic" => name.clone())
                .set(lag as f64);
        }
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        metrics::counter!("linkgraph_bus_rebalances_total").increment(1);
        let event = match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(partitions = tpl.count(), "partitions assigned");
                Rebalanced::Assigned(elements(tpl))
            }
            Rebalance::Revoke(tpl) => {
                tracing::info!(partitions = tpl.count(), "partitions revoked");
                if let Ok(mut r) = self.revoked.lock() {
                    r.extend(elements(tpl));
                }
                Rebalanced::Revoked(elements(tpl))
            }
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "rebalance error");
                return;
            }
        };
        if let Ok(mut ev) = self.events.lock() {
            ev.push(event);
        }
    }
}

#[async_trait]
impl Bus for KafkaBus {
    async fn publish(&self, topic: &str, key: &str, payload: Vec<u8>) -> Result<(), BusError> {
        let record = FutureRecord::to(topic).key(key).payload(&payload);
        self.producer
            .send(record, QUEUE_TIMEOUT)
            .await
            .map_err(|(source, _)| BusError::Kafka {
                op: "produce",
                source,
            })?;
        metrics::counter!("linkgraph_bus_messages_produced_total").increment(1);
        Ok(())
    }

    async fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Subscription>, BusError> {
        let revoked = Arc::new(Mutex::new(Vec::new()));
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut cfg = ClientConfig::new();
        if let Some(id) = &self.instance_id {
            // Static membership: a restarted member with the same id takes
            // its predecessor's partitions back without waiting for its
            // session to expire.
            cfg.set("group.instance.id", format!("{group}-{id}"));
        }
        let consumer: StreamConsumer<Ctx> = cfg
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .set("statistics.interval.ms", "5000")
            // How long the broker may hold a fetch with nothing to return.
            // Kafka answers as soon as data arrives, so a short wait only
            // adds idle fetches (at most 100/s per connection); tansu 0.6
            // holds the fetch for the whole wait, and each of the
            // pipeline's three hops waited it out (`make bench-distributed`
            // on a 5,000-page web: 173 pages/s at 100 ms, 898 at 10 ms).
            .set("fetch.wait.max.ms", "10")
            .create_with_context(Ctx {
                revoked: Arc::clone(&revoked),
                events: Arc::clone(&events),
            })
            .map_err(|source| BusError::Kafka {
                op: "create consumer",
                source,
            })?;
        consumer
            .subscribe(topics)
            .map_err(|source| BusError::Kafka {
                op: "subscribe",
                source,
            })?;
        Ok(Box::new(KafkaSubscription {
            consumer: Arc::new(consumer),
            tracker: OffsetTracker::default(),
            revoked,
            events,
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            probed: None,
            probing: Arc::new(AtomicBool::new(false)),
            stalls: Arc::new(Mutex::new(Stalls::default())),
            rejoin: Arc::new(AtomicBool::new(false)),
        }))
    }

    async fn create_topics(&self, specs: &[TopicSpec]) -> Result<(), BusError> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .map_err(|source| BusError::Kafka {
                op: "create admin client",
                source,
            })?;
        let new: Vec<NewTopic<'_>> = specs
            .iter()
            .map(|s| {
                NewTopic::new(
                    s.name,
                    s.partitions,
                    TopicReplication::Fixed(self.replication),
                )
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = admin
            .create_topics(&new, &opts)
            .await
            .map_err(|source| BusError::Kafka {
                op: "create topics",
                source,
            })?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(BusError::CreateTopic {
                        topic,
                        reason: code.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

struct KafkaSubscription {
    consumer: Arc<StreamConsumer<Ctx>>,
    tracker: OffsetTracker,
    revoked: Arc<Mutex<Vec<(String, i32)>>>,
    events: Arc<Mutex<Vec<Rebalanced>>>,
    /// The subscribed topics, probed partition by partition.
    topics: Vec<String>,
    /// When the partitions were last probed.
    probed: Option<std::time::Instant>,
    /// A probe is running.
    probing: Arc<AtomicBool>,
    /// What the probes saw of the partitions others should be consuming.
    stalls: Arc<Mutex<Stalls>>,
    /// A probe found a stalled partition: re-join the group.
    rejoin: Arc<AtomicBool>,
}

/// Partitions that this member does not own and that do not move: for each,
/// its last committed offset and in how many probes in a row it stood
/// still with messages waiting.
#[derive(Debug, Default)]
struct Stalls(std::collections::HashMap<(String, i32), (Option<i64>, u32)>);

impl Stalls {
    /// Takes one probe into account; true when a partition has stood still
    /// for [`STALL_PROBES`] probes (the counts then start again).
    fn observe(&mut self, views: &[PartitionView]) -> bool {
        let mut stalled = false;
        for v in views {
            let key = (v.topic.clone(), v.partition);
            let waiting = match (v.committed, v.end) {
                (Some(c), Some(e)) => e > c,
                (None, Some(e)) => e > 0,
                _ => false,
            };
            let Some((last, count)) = self.0.get_mut(&key) else {
                // First sight: the baseline.
                self.0.insert(key, (v.committed, 0));
                continue;
            };
            if !v.owned && waiting && *last == v.committed {
                *count += 1;
                stalled |= *count >= STALL_PROBES;
            } else {
                *count = 0;
            }
            *last = v.committed;
        }
        if stalled {
            self.0.clear();
        }
        stalled
    }
}

/// What a probe saw of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PartitionView {
    topic: String,
    partition: i32,
    owned: bool,
    /// The group's committed offset; `None` before the first commit.
    committed: Option<i64>,
    /// The offset the next message will get; `None` when unknown.
    end: Option<i64>,
}

/// Looks at every partition of `topics`: ownership from this consumer's
/// assignment, the group's committed offsets, the end offsets. Blocking.
fn probe(
    consumer: &StreamConsumer<Ctx>,
    topics: &[String],
) -> Result<Vec<PartitionView>, KafkaError> {
    let owned: std::collections::HashSet<(String, i32)> =
        elements(&consumer.assignment()?).into_iter().collect();
    let mut all = TopicPartitionList::new();
    for topic in topics {
        let md = consumer.fetch_metadata(Some(topic), PROBE_TIMEOUT)?;
        for t in md.topics().iter().filter(|t| t.name() == topic) {
            for p in t.partitions() {
                all.add_partition(topic, p.id());
            }
        }
    }
    let committed = consumer.committed_offsets(all.clone(), PROBE_TIMEOUT)?;
    let mut out = Vec::new();
    for e in committed.elements() {
        let (topic, partition) = (e.topic().to_owned(), e.partition());
        let committed = match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        };
        let end = consumer
            .fetch_watermarks(&topic, partition, PROBE_TIMEOUT)
            .ok()
            .map(|(_, high)| end_at_least(high, committed));
        out.push(PartitionView {
            owned: owned.contains(&(topic.clone(), partition)),
            committed,
            end,
            topic,
            partition,
        });
    }
    Ok(out)
}

/// The end offset to report: a group commits only offsets it has read, so
/// its committed offset is a lower bound of the partition's end. A broker
/// whose `ListOffsets` lags its fetches (tansu, seen once in e2e: end 17
/// after a commit of 18, though the watermarks are read after the commits)
/// would otherwise show a negative lag.
fn end_at_least(high: i64, committed: Option<i64>) -> i64 {
    committed.map_or(high, |c| high.max(c))
}

/// Exports a probe's views as gauges.
fn export(views: &[PartitionView]) {
    for v in views {
        let labels = [
            ("topic", v.topic.clone()),
            ("partition", v.partition.to_string()),
        ];
        metrics::gauge!("linkgraph_bus_owned_partitions", &labels)
            .set(f64::from(u8::from(v.owned)));
        // The two offsets move together, from one probe: a committed offset
        // next to the end offset of an older probe (whose watermark fetch
        // this time failed) would show a negative lag.
        if let Some(e) = v.end {
            if let Some(c) = v.committed {
                metrics::gauge!("linkgraph_bus_committed_offset_messages", &labels).set(c as f64);
            }
            metrics::gauge!("linkgraph_bus_end_offset_messages", &labels).set(e as f64);
        }
    }
}

impl KafkaSubscription {
    /// Starts a probe of every partition in the background when
    /// [`PROBE_EVERY`] has passed since the last one and none is running;
    /// the consumer's loop never waits for it, and a failed probe is logged
    /// and tried again later.
    fn probe_if_due(&mut self) {
        let now = std::time::Instant::now();
        if self
            .probed
            .is_some_and(|at| now.duration_since(at) < PROBE_EVERY)
            || self.probing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        self.probed = Some(now);
        let consumer = Arc::clone(&self.consumer);
        let topics = self.topics.clone();
        let probing = Arc::clone(&self.probing);
        let stalls = Arc::clone(&self.stalls);
        let rejoin = Arc::clone(&self.rejoin);
        tokio::task::spawn_blocking(move || {
            match probe(&consumer, &topics) {
                Ok(views) => {
                    export(&views);
                    if stalls.lock().is_ok_and(|mut s| s.observe(&views)) {
                        rejoin.store(true, Ordering::Release);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "partition probe failed"),
            }
            probing.store(false, Ordering::Release);
        });
    }

    /// Re-joins the group when a probe found a partition that nobody
    /// consumes: a new generation assigns every partition to the live
    /// members. Kafka does this itself when a member's session expires;
    /// tansu 0.6 does not (see the README), and a dead member's partitions
    /// would otherwise wait for the next member to join.
    fn rejoin_if_stalled(&mut self) -> Result<(), BusError> {
        if !self.rejoin.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        tracing::warn!(
            topics = ?self.topics,
            "a partition of ours has waited {STALL_PROBES} probes with nobody consuming it; re-joining the group"
        );
        metrics::counter!("linkgraph_bus_rejoins_total").increment(1);
        self.consumer.unsubscribe();
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        self.consumer
            .subscribe(&topics)
            .map_err(|source| BusError::Kafka {
                op: "re-subscribe",
                source,
            })
    }
}

#[async_trait]
impl Subscription for KafkaSubscription {
    fn rebalances(&mut self) -> Vec<Rebalanced> {
        self.events
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }

    async fn partition_count(&mut self, topic: &str) -> Result<i32, BusError> {
        let consumer = Arc::clone(&self.consumer);
        let name = topic.to_owned();
        let md = tokio::task::spawn_blocking(move || {
            consumer.fetch_metadata(Some(&name), Duration::from_secs(10))
        })
        .await
        .unwrap_or(Err(KafkaError::Canceled))
        .map_err(|source| BusError::Kafka {
            op: "fetch metadata",
            source,
        })?;
        let n = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map_or(0, |t| t.partitions().len());
        Ok(i32::try_from(n).unwrap_or(i32::MAX).max(1))
    }

    async fn recv(&mut self) -> Result<Option<Message>, BusError> {
        let m = self
            .consumer
            .recv()
            .await
            .map_err(|source| BusError::Kafka {
                op: "consume",
                source,
            })?;
        let msg = Message {
            topic: m.topic().to_owned(),
            key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            payload: m.payload().unwrap_or_default().to_vec(),
            partition: m.partition(),
            offset: m.offset(),
        };
        self.tracker.received(&msg.topic, msg.partition, msg.offset);
        Ok(Some(msg))
    }

    fn ack(&mut self, m: &Message) {
        self.tracker.acked(&m.topic, m.partition, m.offset);
    }

    async fn commit(&mut self) -> Result<(), BusError> {
        self.probe_if_due();
        self.rejoin_if_stalled()?;
        if let Ok(mut r) = self.revoked.lock() {
            for (t, p) in r.drain(..) {
                self.tracker.forget(&t, p);
            }
        }
        let positions = self.tracker.committable();
        if positions.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (t, p, pos) in &positions {
            tpl.add_partition_offset(t, *p, Offset::Offset(*pos))
                .map_err(|source| BusError::Kafka {
                    op: "commit",
                    source,
                })?;
        }
        let consumer = Arc::clone(&self.consumer);
        let res: Result<(), KafkaError> =
            tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
                .await
                .unwrap_or(Err(KafkaError::Canceled));
        match res {
            Ok(()) => Ok(()),
            // Nothing new to commit is not an error.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
            Err(source) => Err(BusError::Kafka {
                op: "commit",
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(partition: i32, owned: bool, committed: i64, end: i64) -> PartitionView {
        PartitionView {
            topic: "t".into(),
            partition,
            owned,
            committed: Some(committed),
            end: Some(end),
        }
    }

    #[test]
    fn committed_and_end_offsets_are_exported_from_the_same_probe() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            export(&[view(0, true, 5, 9)]);
            // The next probe read a newer commit but its watermark fetch
            // failed: the pair stays the older probe's, so the lag never
            // goes negative.
            let mut failed = view(0, true, 12, 0);
            failed.end = None;
            export(&[failed]);
        });
        let text = handle.render();
        let value = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{name}{{")))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(
            value("linkgraph_bus_committed_offset_messages").as_deref(),
            Some("5"),
            "{text}"
        );
        assert_eq!(
            value("linkgraph_bus_end_offset_messages").as_deref(),
            Some("9"),
            "{text}"
        );
    }

    #[test]
    fn a_lagging_watermark_is_raised_to_the_committed_offset() {
        assert_eq!(end_at_least(17, Some(18)), 18);
        assert_eq!(end_at_least(20, Some(18)), 20);
        assert_eq!(end_at_least(20, None), 20);
    }

    #[test]
    fn only_a_backlog_nobody_commits_for_long_asks_for_a_rejoin() {
        let mut s = Stalls::default();
        // Partition 0 is ours and idle; 1 is another member's and moving;
        // 2 is caught up; 3 waits with nothing committed.
        let probe = |i: i64| {
            vec![
                view(0, true, 5, 9),
                view(1, false, 10 + i, 20 + i),
                view(2, false, 7, 7),
                view(3, false, 4, 9 + i),
            ]
        };
        assert!(!s.observe(&probe(0)), "first sight sets the baseline");
        for i in 1..i64::from(STALL_PROBES) {
            assert!(!s.observe(&probe(i)), "probe {i}");
        }
        assert!(s.observe(&probe(i64::from(STALL_PROBES))));
        // Counting starts again after a rejoin, and progress resets it.
        assert!(!s.observe(&probe(10)));
        for i in 0..i64::from(STALL_PROBES) * 2 {
            let mut moving = probe(11 + i);
            moving[3] = view(3, false, 5 + i, 20);
            assert!(!s.observe(&moving), "probe {i}");
        }
    }
}
