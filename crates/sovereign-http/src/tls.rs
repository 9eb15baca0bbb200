//! TLS in the binary: the certificate and key from PEM files, re-read when the files change
//! (a certbot renewal), without dropping a connection.
//!
//! Each handshake takes the pair in force at that moment; connections already open keep the
//! one they began with. A renewal that cannot be read, or whose key does not match its
//! certificate, is logged and the previous pair stays in force.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::Closing;

/// How often the files are looked at for a change.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// The certificate files and the pair in force.
#[derive(Debug)]
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Read the pair; an error names the file and what is wrong with it.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Certificates>, String> {
        let pair = read_pair(cert, key)?;
        Ok(Arc::new(Certificates {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(pair)),
        }))
    }

    /// The acceptor handshakes are made with (HTTP/1.1, TLS 1.2 and 1.3).
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Re-read the pair whenever either file changes, until `closing`.
    pub async fn watch(self: Arc<Self>, closing: Closing) {
        let mut seen = self.stamps();
        loop {
            tokio::select! {
                _ = closing.closed() => return,
                _ = tokio::time::sleep(WATCH_EVERY) => {}
            }
            let now = self.stamps();
            if now == seen {
                continue;
            }
            match read_pair(&self.cert, &self.key) {
                Ok(pair) => {
                    *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(pair);
                    seen = now;
                    tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                }
                // Half-written renewals are common (cert first, key second): try again on
                // the next look, keep serving the pair in force meanwhile.
                Err(e) => {
                    tracing::warn!("TLS certificate not reloaded, the previous one stays: {e}")
                }
            }
        }
    }

    fn stamps(&self) -> (Option<SystemTime>, Option<SystemTime>) {
        let stamp = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        (stamp(&self.cert), stamp(&self.key))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

fn read_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let name = |p: &Path| p.display().to_string();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {}", name(cert), pem_error(&e)))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {}", name(cert), pem_error(&e)))?;
    if chain.is_empty() {
        return Err(format!("{}: no PEM certificate in it", name(cert)));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{}: {}", name(key), pem_error(&e)))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, private, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => format!(
            "the key in {} does not belong to the certificate in {}",
            name(key),
            name(cert)
        ),
        e => format!("{} / {}: {e}", name(cert), name(key)),
    })
}

fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(io) => format!("cannot read: {io}"),
        Error::NoItemsFound => "no PEM item of the expected kind in it".to_string(),
        other => format!("not valid PEM: {other:?}"),
    }
}
