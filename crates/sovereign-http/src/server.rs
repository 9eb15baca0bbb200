//! The listeners: connections accepted up to a cap, TLS where configured, HTTP/1.1 with a
//! header timeout, and a graceful end.
//!
//! - Every connection takes a slot of [`ConnectionLimits::max_connections`] (shared by all
//!   listeners); at the cap, each listener holds one accepted connection until a slot frees and
//!   the rest wait in the kernel's backlog.
//! - A connection must send each request's head within the header timeout, counted from the
//!   moment it is ready for that request: a slow head (slowloris) and an idle keep-alive
//!   connection are closed alike. A TLS handshake has the same time.
//! - Each request carries its [`Connection`] (peer address, TLS or not, which listener).
//! - A listener is TCP or a Unix socket ([`Listener`]). The Unix socket ([`bind_unix`], in the
//!   data dir, mode 0600) is for the data dir's owner: no TLS there, and every request on it is
//!   marked [`Connection::local_socket`]. What that grants is `permissions.rs`'s decision.
//! - At shutdown every listener stops accepting, the streams end (`Closing`), requests in
//!   flight finish, idle connections close.

use std::future::Future;
#[cfg(unix)]
use std::net::Ipv4Addr;
use std::net::SocketAddr;
#[cfg(unix)]
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
#[cfg(unix)]
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::tls::Certificates;
use crate::Closing;

/// What a request knows of the connection it came on.
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    /// The peer's address; `127.0.0.1:0` on the Unix socket.
    pub peer: SocketAddr,
    /// Whether it came over TLS (session cookies are `Secure` then).
    pub tls: bool,
    /// The plain listener for senders that cannot do TLS: webhook and signal routes only.
    pub webhooks_only: bool,
    /// Whether it came over the data dir's Unix socket (only its owner can connect).
    pub local_socket: bool,
}

/// A socket to listen on.
pub enum Listener {
    Tcp(TcpListener),
    /// The data dir's socket: no TLS, every connection its owner's.
    #[cfg(unix)]
    Unix(UnixListener),
}

/// A connection a [`Listener`] accepted.
enum Accepted {
    Tcp(TcpStream, SocketAddr),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Listener {
    async fn accept(&self) -> std::io::Result<Accepted> {
        match self {
            Listener::Tcp(l) => l.accept().await.map(|(s, peer)| Accepted::Tcp(s, peer)),
            #[cfg(unix)]
            Listener::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        }
    }
}

/// One listening socket and how it is served. `tls` must be `None` on a Unix socket.
pub struct Endpoint {
    pub listener: Listener,
    pub tls: Option<Arc<Certificates>>,
    pub webhooks_only: bool,
}

/// The path of a Unix socket this process bound; dropping it removes the file, unless another
/// socket has taken the path since (a later engine on the same data dir).
#[cfg(unix)]
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// (device, inode) of the socket bound.
    identity: (u64, u64),
}

#[cfg(unix)]
impl Drop for SocketFile {
    fn drop(&mut self) {
        if identity(&self.path).is_ok_and(|id| id == self.identity) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(unix)]
fn identity(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).map(|m| (m.dev(), m.ino()))
}

/// Listen on a Unix socket at `path`, readable and writable by its owner only (0600, whatever
/// the umask). A socket file already there is removed first: the caller holds the lock of the
/// directory it is in, so no live engine can be listening on it. Anything else at the path is
/// an error, never removed.
#[cfg(unix)]
pub fn bind_unix(path: &Path) -> std::io::Result<(UnixListener, SocketFile)> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "something other than a socket is there",
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    let file = SocketFile {
        path: path.to_path_buf(),
        identity: identity(path)?,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok((listener, file))
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

/// Tells every open connection to finish its request and close. Each connection holds a
/// oneshot of its own: polling it is an atomic load, where a shared cancellation token would
/// take a lock on every wake of every connection.
#[derive(Clone, Default)]
struct Draining(Arc<std::sync::Mutex<DrainState>>);

#[derive(Default)]
struct DrainState {
    closed: bool,
    next: u64,
    open: std::collections::HashMap<u64, tokio::sync::oneshot::Sender<()>>,
}

impl Draining {
    fn state(&self) -> std::sync::MutexGuard<'_, DrainState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new connection's ticket and signal; `None` once draining has begun.
    fn join(&self) -> Option<(u64, tokio::sync::oneshot::Receiver<()>)> {
        let mut state = self.state();
        if state.closed {
            return None;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let id = state.next;
        state.next += 1;
        state.open.insert(id, tx);
        Some((id, rx))
    }

    fn leave(&self, id: u64) {
        self.state().open.remove(&id);
    }

    fn drain(&self) {
        let mut state = self.state();
        state.closed = true;
        for (_, tx) in state.open.drain() {
            let _ = tx.send(());
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
    let draining = Draining::default();
    let mut loops = Vec::new();
    for endpoint in endpoints {
        #[cfg(unix)]
        if matches!(endpoint.listener, Listener::Unix(_)) && endpoint.tls.is_some() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "TLS is not served on a Unix socket",
            ));
        }
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
            Shared {
                app: app.clone(),
                limits,
                slots: slots.clone(),
                connections: connections.clone(),
                closing: closing.clone(),
                draining: draining.clone(),
            },
        ));
    }
    let stop = {
        let (closing, draining) = (closing.clone(), draining.clone());
        async move {
            shutdown.await;
            closing.close();
            draining.drain();
        }
    };
    tokio::join!(stop, futures_util::future::join_all(loops));
    connections.close();
    connections.wait().await;
    Ok(())
}

/// What every accept loop shares.
struct Shared {
    app: Router,
    limits: ConnectionLimits,
    slots: Arc<Semaphore>,
    connections: TaskTracker,
    closing: Closing,
    draining: Draining,
}

async fn accept_loop(endpoint: Endpoint, acceptor: Option<TlsAcceptor>, shared: Shared) {
    let Shared {
        app,
        limits,
        slots,
        connections,
        closing,
        draining,
    } = shared;
    let Endpoint {
        listener,
        webhooks_only,
        ..
    } = endpoint;
    loop {
        let accepted = tokio::select! {
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
        // A slot for it (shared by every listener): at the cap, this listener accepts nothing
        // more until a connection closes, so the rest wait in the kernel's backlog.
        let slot = tokio::select! {
            biased;
            _ = closing.closed() => return,
            slot = slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else { return };
        let (app, draining, acceptor) = (app.clone(), draining.clone(), acceptor.clone());
        let (stream, peer) = match accepted {
            #[cfg(unix)]
            Accepted::Unix(stream) => {
                let info = Connection {
                    peer: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
                    tls: false,
                    webhooks_only,
                    local_socket: true,
                };
                connections.spawn(async move {
                    let _slot = slot;
                    serve_connection(TokioIo::new(stream), app, info, limits, draining).await
                });
                continue;
            }
            Accepted::Tcp(stream, peer) => (stream, peer),
        };
        let _ = stream.set_nodelay(true);
        let info = Connection {
            peer,
            tls: acceptor.is_some(),
            webhooks_only,
            local_socket: false,
        };
        connections.spawn(async move {
            let _slot = slot;
            match acceptor {
                None => serve_connection(TokioIo::new(stream), app, info, limits, draining).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => {
                            serve_connection(TokioIo::new(tls), app, info, limits, draining).await
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
    draining: Draining,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let Some((ticket, stop)) = draining.join() else {
        return;
    };
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
        _ = stop => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.as_mut().await;
        }
    }
    draining.leave(ticket);
}
