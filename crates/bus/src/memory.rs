//! The in-process bus: topics are queues in memory, for running every
//! stage in one process (tests, demos). One consumer group per topic;
//! messages published before anyone subscribed wait for the first
//! subscriber. Nothing survives the process, so commit is a no-op.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::{Bus, BusError, Message, Subscription, TopicSpec};

#[derive(Default)]
struct Topic {
    backlog: VecDeque<Message>,
    subscribers: Vec<mpsc::UnboundedSender<Message>>,
    next_offset: i64,
}

/// An in-process bus.
#[derive(Default)]
pub struct MemoryBus {
    topics: Mutex<HashMap<String, Topic>>,
}

/// Stable key-to-subscriber choice, like Kafka's key partitioning.
fn pick(key: &str, n: usize) -> usize {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    usize::try_from(h % n.max(1) as u64).unwrap_or(0)
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, topic: &str, key: &str, payload: Vec<u8>) -> Result<(), BusError> {
        let mut topics = self.topics.lock().map_err(|_| BusError::Closed)?;
        let t = topics.entry(topic.to_owned()).or_default();
        t.subscribers.retain(|s| !s.is_closed());
        let m = Message {
            topic: topic.to_owned(),
            key: key.to_owned(),
            payload,
            partition: 0,
            offset: t.next_offset,
        };
        t.next_offset += 1;
        if t.subscribers.is_empty() {
            t.backlog.push_back(m);
            return Ok(());
        }
        let i = pick(key, t.subscribers.len());
        if let Err(e) = t.subscribers[i].send(m) {
            t.backlog.push_back(e.0);
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        _group: &str,
        topics: &[&str],
    ) -> Result<Box<dyn Subscription>, BusError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut all = self.topics.lock().map_err(|_| BusError::Closed)?;
        for name in topics {
            let t = all.entry((*name).to_owned()).or_default();
            for m in t.backlog.drain(..) {
                tx.send(m).map_err(|_| BusError::Closed)?;
            }
            t.subscribers.push(tx.clone());
        }
        Ok(Box::new(MemorySubscription { rx }))
    }

    async fn create_topics(&self, _specs: &[TopicSpec]) -> Result<(), BusError> {
        Ok(())
    }
}

struct MemorySubscription {
    rx: mpsc::UnboundedReceiver<Message>,
}

#[async_trait]
impl Subscription for MemorySubscription {
    async fn recv(&mut self) -> Result<Option<Message>, BusError> {
        Ok(self.rx.recv().await)
    }

    fn ack(&mut self, _m: &Message) {}

    async fn commit(&mut self) -> Result<(), BusError> {
        Ok(())
    }
}
