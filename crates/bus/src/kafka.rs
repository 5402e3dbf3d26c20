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
