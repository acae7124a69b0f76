//! An in-process queue with SQS's semantics where they matter: a received message is invisible
//! for the visibility timeout, its receive count goes up with every receive, a change of
//! visibility brings it back later, and a message received more than `max_receive_count` times
//! moves to the dead-letter list. One process only; lost on exit.

use crate::ports::{Queue, QueueError, QueueMessage, QueueName};
use async_trait::async_trait;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

struct Stored {
    id: String,
    body: String,
    receive_count: u32,
    visible_at: Instant,
    receipt: Option<String>,
}

#[derive(Default)]
struct Inner {
    work: Vec<Stored>,
    dead: Vec<Stored>,
    seq: u64,
}

pub struct MemoryQueue {
    inner: Mutex<Inner>,
    arrived: Notify,
    max_receive_count: u32,
    visibility: Duration,
}

impl std::fmt::Debug for MemoryQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryQueue")
            .field("work", &inner.work.len())
            .field("dead", &inner.dead.len())
            .finish()
    }
}

impl MemoryQueue {
    /// A queue whose messages go to its dead letters after `max_receive_count` receives, and
    /// stay invisible `visibility` after each receive.
    pub fn new(max_receive_count: u32, visibility: Duration) -> Self {
        MemoryQueue {
            inner: Mutex::new(Inner::default()),
            arrived: Notify::new(),
            max_receive_count: max_receive_count.max(1),
            visibility,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Messages on the work queue and in the dead letters (visible or not).
    pub fn depth(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.work.len(), inner.dead.len())
    }

    fn take_visible(&self, from: QueueName, max: usize, visibility: Duration) -> Vec<QueueMessage> {
        let mut inner = self.lock();
        let now = Instant::now();
        let inner = &mut *inner;
        if from == QueueName::Work {
            // SQS moves a message that was received maxReceiveCount times when it would be
            // received once more.
            let limit = self.max_receive_count;
            let (dead, keep): (Vec<Stored>, Vec<Stored>) = inner
                .work
                .drain(..)
                .partition(|m| m.visible_at <= now && m.receive_count >= limit);
            inner.work = keep;
            for mut m in dead {
                m.receipt = None;
                inner.dead.push(m);
            }
        }
        let list = match from {
            QueueName::Work => &mut inner.work,
            QueueName::DeadLetters => &mut inner.dead,
        };
        let mut out = Vec::new();
        for m in list.iter_mut().filter(|m| m.visible_at <= now).take(max) {
            m.receive_count += 1;
            inner.seq += 1;
            let receipt = format!("{}#{}", m.id, inner.seq);
            m.receipt = Some(receipt.clone());
            m.visible_at = now + visibility;
            out.push(QueueMessage {
                id: m.id.clone(),
                receipt,
                body: m.body.clone(),
                receive_count: m.receive_count,
            });
        }
        out
    }

    fn find<'a>(
        inner: &'a mut Inner,
        from: QueueName,
        receipt: &str,
    ) -> Option<(&'a mut Vec<Stored>, usize)> {
        let list = match from {
            QueueName::Work => &mut inner.work,
            QueueName::DeadLetters => &mut inner.dead,
        };
        let pos = list
            .iter()
            .position(|m| m.receipt.as_deref() == Some(receipt))?;
        Some((list, pos))
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send(&self, bodies: &[String]) -> Result<(), QueueError> {
        {
            let mut inner = self.lock();
            for body in bodies {
                inner.seq += 1;
                let id = format!("mem-{:08}", inner.seq);
                inner.work.push(Stored {
                    id,
                    body: body.clone(),
                    receive_count: 0,
                    visible_at: Instant::now(),
                    receipt: None,
                });
            }
        }
        self.arrived.notify_waiters();
        Ok(())
    }

    async fn receive(
        &self,
        from: QueueName,
        max: usize,
        wait: Duration,
        visibility: Option<u32>,
    ) -> Result<Vec<QueueMessage>, QueueError> {
        let visibility = visibility
            .map(|s| Duration::from_secs(u64::from(s)))
            .unwrap_or(self.visibility);
        let until = Instant::now() + wait;
        loop {
            let got = self.take_visible(from, max.max(1), visibility);
            if !got.is_empty() || Instant::now() >= until {
                return Ok(got);
            }
            // A message may arrive, or one become visible again: look again soon.
            let nap = Duration::from_millis(50).min(until - Instant::now());
            tokio::select! {
                _ = self.arrived.notified() => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    async fn delete(&self, from: QueueName, receipt: &str) -> Result<(), QueueError> {
        let mut inner = self.lock();
        if let Some((list, pos)) = Self::find(&mut inner, from, receipt) {
            list.remove(pos);
        }
        Ok(())
    }

    async fn change_visibility(
        &self,
        from: QueueName,
        receipt: &str,
        secs: u32,
    ) -> Result<(), QueueError> {
        let mut inner = self.lock();
        match Self::find(&mut inner, from, receipt) {
            Some((list, pos)) => {
                list[pos].visible_at = Instant::now() + Duration::from_secs(u64::from(secs));
                Ok(())
            }
            None => Err(QueueError::Unavailable(
                "receipt handle is not current".into(),
            )),
        }
    }

    async fn start_redrive_all(&self) -> Result<(), QueueError> {
        {
            let mut inner = self.lock();
            let dead: Vec<Stored> = inner.dead.drain(..).collect();
            for mut m in dead {
                m.receive_count = 0;
                m.receipt = None;
                m.visible_at = Instant::now();
                inner.work.push(m);
            }
        }
        self.arrived.notify_waiters();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn receive_hide_retry_and_dead_letters() {
        let q = MemoryQueue::new(2, Duration::from_secs(30));
        q.send(&["a".into()]).await.unwrap();
        let got = q
            .receive(QueueName::Work, 10, Duration::ZERO, None)
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].receive_count, 1);
        // Invisible while received.
        assert!(q
            .receive(QueueName::Work, 10, Duration::ZERO, None)
            .await
            .unwrap()
            .is_empty());
        q.change_visibility(QueueName::Work, &got[0].receipt, 0)
            .await
            .unwrap();
        let again = q
            .receive(QueueName::Work, 10, Duration::from_millis(200), None)
            .await
            .unwrap();
        assert_eq!(again[0].receive_count, 2);
        q.change_visibility(QueueName::Work, &again[0].receipt, 0)
            .await
            .unwrap();
        // Received twice (the maximum): the third receive moves it to the dead letters.
        assert!(q
            .receive(QueueName::Work, 10, Duration::ZERO, None)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(q.depth(), (0, 1));
        let dead = q
            .receive(QueueName::DeadLetters, 10, Duration::ZERO, Some(0))
            .await
            .unwrap();
        assert_eq!(dead[0].body, "a");
        q.start_redrive_all().await.unwrap();
        assert_eq!(q.depth(), (1, 0));
        let back = q
            .receive(QueueName::Work, 10, Duration::ZERO, None)
            .await
            .unwrap();
        assert_eq!(back[0].receive_count, 1);
        q.delete(QueueName::Work, &back[0].receipt).await.unwrap();
        assert_eq!(q.depth(), (0, 0));
    }
}
