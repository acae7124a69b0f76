//! Our own accept loop (hyper 1, HTTP/1.1 with keep-alive) around the axum
//! router, with a per-connection kill switch so that a handler can close its
//! connection without sending any response.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use super::SHUTDOWN_GRACE;

/// Put in every request's extensions: triggering it makes the connection
/// task drop the connection at once (the socket closes, no response).
#[derive(Debug, Clone)]
pub(super) struct KillSwitch(Arc<Notify>);

impl KillSwitch {
    pub(super) fn trigger(&self) {
        // notify_one keeps a permit if the connection task is not waiting yet.
        self.0.notify_one();
    }
}

/// Resolves once shutdown is requested (or the handle is gone).
async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown_requested(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve_connection(stream, peer, router.clone(), shutdown.clone()));
                }
                Err(err) => {
                    // e.g. too many open files: back off a little.
                    tracing::warn!(error = %err, "panel-sim: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                if let Err(err) = joined {
                    tracing::warn!(error = %err, "panel-sim: connection task failed");
                }
            }
        }
    }
    drop(listener);
    tracing::info!("panel-sim: shutting down");
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_millis(200), drain)
        .await
        .is_err()
    {
        connections.abort_all();
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    let kill = KillSwitch(Arc::new(Notify::new()));
    let switch = kill.clone();
    let service = router.map_request(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(switch.clone());
        request
    });
    // half_close: a client that gives up (closes its side) while a request is
    // in flight does not abort the processing, as with a real panel.
    let connection = http1::Builder::new()
        .keep_alive(true)
        .half_close(true)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(%peer, error = %err, "panel-sim: connection error");
            }
        }
        () = kill.0.notified() => {
            tracing::debug!(%peer, "panel-sim: connection dropped on purpose");
            // Returning drops `connection`, which closes the socket.
        }
        () = shutdown_requested(&mut shutdown) => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                _ = connection.as_mut() => {}
                () = kill.0.notified() => {}
                () = tokio::time::sleep(SHUTDOWN_GRACE) => {}
            }
        }
    }
}
