//! The listeners: connections accepted up to a cap, TLS where configured, HTTP/1.1 with a
//! header timeout, and a graceful end.
//!
//! - Every connection takes a slot of [`ConnectionLimits::max_connections`] (shared by all
//!   listeners); at the cap, new connections wait in the kernel's backlog until one closes.
//! - A connection must send each request's head within the header timeout, counted from the
//!   moment it is ready for that request: a slow head (slowloris) and an idle keep-alive
//!   connection are closed alike. A TLS handshake has the same time.
//! - Each request carries its [`Connection`] (peer address, TLS or not, which listener).
//! - At shutdown every listener stops accepting, the streams end (`Closing`), requests in
//!   flight finish, idle connections close.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::tls::Certificates;
use crate::Closing;

/// What a request knows of the connection it came on.
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    pub peer: SocketAddr,
    /// Whether it came over TLS (session cookies are `Secure` then).
    pub tls: bool,
    /// The plain listener for senders that cannot do TLS: webhook and signal routes only.
    pub webhooks_only: bool,
}

/// One listening socket and how it is served.
pub struct Endpoint {
    pub listener: TcpListener,
    pub tls: Option<Arc<Certificates>>,
    pub webhooks_only: bool,
}

/// The limits every connection lives under.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

/// Serve `app` on every endpoint until `shutdown` resolves, then end gracefully.
pub async fn serve_endpoints(
    endpoints: Vec<Endpoint>,
    app: Router,
    limits: ConnectionLimits,
    closing: Closing,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut loops = Vec::new();
    for endpoint in endpoints {
        let acceptor = match &endpoint.tls {
            Some(certs) => {
                connections.spawn(certs.clone().watch(closing.clone()));
                Some(certs.acceptor().map_err(std::io::Error::other)?)
            }
            None => None,
        };
        loops.push(accept_loop(
            endpoint,
            acceptor,
            app.clone(),
            limits,
            slots.clone(),
            connections.clone(),
            closing.clone(),
        ));
    }
    let stop = {
        let closing = closing.clone();
        async move {
            shutdown.await;
            closing.close();
        }
    };
    tokio::join!(stop, futures_util::future::join_all(loops));
    connections.close();
    connections.wait().await;
    Ok(())
}

async fn accept_loop(
    endpoint: Endpoint,
    acceptor: Option<TlsAcceptor>,
    app: Router,
    limits: ConnectionLimits,
    slots: Arc<Semaphore>,
    connections: TaskTracker,
    closing: Closing,
) {
    let Endpoint {
        listener,
        webhooks_only,
        ..
    } = endpoint;
    loop {
        let slot = tokio::select! {
            biased;
            _ = closing.closed() => return,
            slot = slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else { return };
        let (stream, peer) = tokio::select! {
            biased;
            _ = closing.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let info = Connection {
            peer,
            tls: acceptor.is_some(),
            webhooks_only,
        };
        let (app, closing, acceptor) = (app.clone(), closing.clone(), acceptor.clone());
        connections.spawn(async move {
            let _slot = slot;
            match acceptor {
                None => serve_connection(TokioIo::new(stream), app, info, limits, closing).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => {
                            serve_connection(TokioIo::new(tls), app, info, limits, closing).await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

async fn serve_connection<I>(
    io: I,
    app: Router,
    info: Connection,
    limits: ConnectionLimits,
    closing: Closing,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(info);
        app.clone().oneshot(req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        // Above the limits the engine answers itself (crate::hygiene), so those get JSON.
        .max_headers(2 * crate::hygiene::MAX_HEADERS)
        .max_buf_size(256 * 1024);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        done = conn.as_mut() => {
            if let Err(e) = done {
                tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
            }
        }
        _ = closing.closed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.as_mut().await;
        }
    }
}
