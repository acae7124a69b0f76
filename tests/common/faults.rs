//! Faults between the bridge and its state store, and the check that a delivery record agrees
//! with the answer the sender got.

use super::bridge::Answer;
use payout_bridge::ports::{DeliveryRecord, DeliveryState};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

/// Checks that the stored record agrees with the answer the sender got (nothing
/// half-written): a 201 is COMPLETED with that body, a 504 is OUTCOME_UNKNOWN, a 409 is
/// IN_PROGRESS, any other error a FAILED record replaying the same status and error type.
#[track_caller]
pub fn assert_record_matches(record: Option<&DeliveryRecord>, answer: &Answer) {
    let record = record.unwrap_or_else(|| panic!("no delivery record for answer {answer:?}"));
    match (answer.status, &record.state) {
        (201, DeliveryState::Completed { status, body }) => {
            assert_eq!(*status, 201, "{record:?}");
            let stored: Value = serde_json::from_str(body).expect("stored body is JSON");
            assert_eq!(
                stored["payments"][0]["id"].as_u64(),
                answer.payout_id(),
                "stored payout id vs answer: {record:?} {answer:?}"
            );
        }
        (504, DeliveryState::OutcomeUnknown { reason }) => {
            assert!(!reason.is_empty(), "{record:?}");
        }
        (409, DeliveryState::InProgress { .. }) => {}
        (s, DeliveryState::Failed { status, body }) if s != 201 && s != 504 && s != 409 => {
            assert_eq!(*status, s, "{record:?} vs {answer:?}");
            let stored: Value = serde_json::from_str(body).expect("stored body is JSON");
            assert_eq!(
                stored["error"]["type"].as_str(),
                Some(answer.error_type()),
                "{record:?} vs {answer:?}"
            );
        }
        _ => panic!("record {record:?} does not match the answer {answer:?}"),
    }
}

/// A TCP proxy on a fixed loopback port that can be switched off (its port then refuses
/// connections and every proxied connection is closed) and on again, and can lose answers:
/// with `lose_answers(n)`, the next `n` responses are dropped and their connections closed
/// after the request was delivered (the store applied it, the client never hears).
pub struct Switch {
    pub port: u16,
    target: SocketAddr,
    lose: std::sync::Arc<std::sync::atomic::AtomicU32>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Switch {
    pub async fn new(target: SocketAddr) -> Switch {
        let mut s = Switch {
            port: 0,
            target,
            lose: Default::default(),
            task: None,
        };
        s.on().await;
        s
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Drop the next `n` answers (in addition to any still pending).
    pub fn lose_answers(&self, n: u32) {
        self.lose.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Answers still to be lost.
    pub fn answers_to_lose(&self) -> u32 {
        self.lose.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub async fn on(&mut self) {
        if self.task.is_some() {
            return;
        }
        let mut listener = None;
        for _ in 0..100 {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let listener = listener.expect("rebind the proxy port");
        self.port = listener.local_addr().expect("addr").port();
        let (target, lose) = (self.target, self.lose.clone());
        self.task = Some(tokio::spawn(async move {
            // Owned here: aborting this task drops the listener and every connection.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((inbound, _)) = accepted else { continue };
                        conns.spawn(pipe(inbound, target, lose.clone()));
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        }));
    }

    pub async fn off(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

/// One proxied connection. Returning drops (closes) both sockets.
async fn pipe(
    inbound: tokio::net::TcpStream,
    target: SocketAddr,
    lose: std::sync::Arc<std::sync::atomic::AtomicU32>,
) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
        return;
    };
    let (mut in_r, mut in_w) = inbound.into_split();
    let (mut out_r, mut out_w) = outbound.into_split();
    let requests = async {
        let _ = tokio::io::copy(&mut in_r, &mut out_w).await;
    };
    let answers = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match out_r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let lost = lose
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |k| k.checked_sub(1))
                .is_ok();
            if lost || in_w.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = requests => {}
        () = answers => {}
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
