//! Access control: the API keys in force, who a request is, and the key lifecycle (create,
//! list, revoke), each on the audit trail.
//!
//! The keys live in the store (hashes only) and in memory, so a check is a map lookup and a
//! hash, and a revocation bites on the next request. The decisions (key text, roles, what a
//! route needs) are in `sovereign_core::access`; the HTTP layer asks this handle who a request
//! is and applies its permission table. It must not know routes or HTTP.

pub mod settings;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use serde_json::json;
use sovereign_core::access::{
    check_key, check_name, ApiKey, KeyRefusal, KeyText, Principal, Role, ID_BYTES, SECRET_BYTES,
};
use sovereign_core::error::Invalid;
use sovereign_store::{Store, StoreError};

use crate::audit::Audit;
use crate::support::{lock, lock_read, lock_write};
pub use settings::{AccessSettings, Mode};

/// Every way a key operation can fail.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{0}")]
    Invalid(Invalid),
    #[error("a key named {0:?} exists (revoke it first)")]
    Exists(String),
    #[error("no key named {0:?}")]
    Unknown(String),
    #[error("no random bytes for a key")]
    Random,
    #[error("the keys could not be stored: {0}")]
    Store(StoreError),
}

/// The access handle. Cheap to clone.
#[derive(Clone)]
pub struct Access(Arc<Inner>);

struct Inner {
    mode: Mode,
    trusted_proxies: Vec<IpAddr>,
    hosts: Vec<String>,
    keys: RwLock<HashMap<String, ApiKey>>,
    /// (key id, address) pairs seen since start: a key's first use from an address is audited.
    seen: Mutex<HashSet<(String, IpAddr)>>,
    store: Store,
    audit: Audit,
}

impl Access {
    /// Load the keys; `loopback_bind` decides the mode when the config does not.
    pub async fn start(
        settings: AccessSettings,
        loopback_bind: bool,
        store: Store,
        audit: Audit,
    ) -> Result<Access, StoreError> {
        let keys = store
            .list_keys()
            .await?
            .into_iter()
            .map(|k| (k.id.clone(), k))
            .collect();
        Ok(Access(Arc::new(Inner {
            mode: settings.mode_for(loopback_bind),
            trusted_proxies: settings.trusted_proxies,
            hosts: settings.hosts,
            keys: RwLock::new(keys),
            seen: Mutex::new(HashSet::new()),
            store,
            audit,
        })))
    }

    pub fn mode(&self) -> Mode {
        self.0.mode
    }

    /// Whether a request's `Host` (with or without its port) names this engine: an IP address,
    /// `localhost`, or a configured name. Anything else is a foreign name pointing here.
    pub fn answers_to(&self, host: &str) -> bool {
        let name = match host.strip_prefix('[') {
            // [v6]:port
            Some(rest) => rest.split(']').next().unwrap_or_default(),
            None => host.rsplit_once(':').map_or(host, |(h, port)| {
                if port.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    host
                }
            }),
        };
        let name = name.to_ascii_lowercase();
        name.parse::<IpAddr>().is_ok() || name == "localhost" || self.0.hosts.contains(&name)
    }

    /// Whether a forwarded client address from `peer` is believed.
    pub fn trusts_proxy(&self, peer: IpAddr) -> bool {
        self.0.trusted_proxies.contains(&peer)
    }

    /// Who presents `key` from `address`. The key is never logged or kept.
    pub fn authenticate(&self, key: &str, address: IpAddr) -> Result<Principal, KeyRefusal> {
        let presented = KeyText::parse(key).ok_or(KeyRefusal::Malformed)?;
        let now = Utc::now();
        let principal = {
            let keys = lock_read(&self.0.keys);
            check_key(&presented, keys.get(&presented.id), now)?
        };
        let first = lock(&self.0.seen).insert((presented.id.clone(), address));
        if first {
            // Its first use from this address (since start) is on the trail and in the store.
            self.0.store.touch_key(presented.id.clone(), now);
            self.0.audit.record(
                &principal.actor(),
                "key.used",
                json!({"address": address.to_string()}),
            );
        }
        Ok(principal)
    }

    /// Make a key: shown once, stored as a hash, on the audit trail.
    pub async fn create(
        &self,
        name: &str,
        role: Role,
        expires_at: Option<DateTime<Utc>>,
        actor: &str,
    ) -> Result<(ApiKey, String), AccessError> {
        let (key, text) = new_key(name, role, expires_at)?;
        self.0
            .store
            .insert_key(key.clone())
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => AccessError::Exists(name.to_string()),
                e => AccessError::Store(e),
            })?;
        lock_write(&self.0.keys).insert(key.id.clone(), key.clone());
        self.0.audit.record(
            actor,
            "key.created",
            json!({"name": name, "role": role.as_str(), "expires_at": expires_at.map(|t| t.to_rfc3339())}),
        );
        Ok((key, text.reveal()))
    }

    /// Revoke the live key of this name; it is refused from the next request on.
    pub async fn revoke(&self, name: &str, actor: &str) -> Result<(), AccessError> {
        let now = Utc::now();
        self.0
            .store
            .revoke_key(name.to_string(), now)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => AccessError::Unknown(name.to_string()),
                e => AccessError::Store(e),
            })?;
        for k in lock_write(&self.0.keys).values_mut() {
            if k.name == name && k.revoked_at.is_none() {
                k.revoked_at = Some(now);
            }
        }
        self.0
            .audit
            .record(actor, "key.revoked", json!({"name": name}));
        Ok(())
    }

    /// Every key (revoked ones too), oldest first; never a secret.
    pub fn list(&self) -> Vec<ApiKey> {
        let mut v: Vec<ApiKey> = lock_read(&self.0.keys).values().cloned().collect();
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        v
    }
}

/// A new key of random bytes (from the operating system).
pub fn new_key(
    name: &str,
    role: Role,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(ApiKey, KeyText), AccessError> {
    use ring::rand::SecureRandom;
    check_name(name).map_err(AccessError::Invalid)?;
    let rng = ring::rand::SystemRandom::new();
    let (mut id, mut secret) = ([0u8; ID_BYTES], [0u8; SECRET_BYTES]);
    rng.fill(&mut id).map_err(|_| AccessError::Random)?;
    rng.fill(&mut secret).map_err(|_| AccessError::Random)?;
    let text = KeyText::from_bytes(&id, &secret);
    let key = ApiKey {
        id: text.id.clone(),
        name: name.to_string(),
        role,
        hash: text.hash(),
        created_at: Utc::now(),
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    Ok((key, text))
}
