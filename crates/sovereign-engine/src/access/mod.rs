//! Access control: the API keys in force, who a request is, and the key lifecycle (create,
//! list, revoke), each on the audit trail.
//!
//! The keys live in the store (hashes only) and in memory, so a check is a map lookup and a
//! hash, and a revocation bites on the next request. The decisions (key text, roles, what a
//! route needs) are in `sovereign_core::access`; the HTTP layer asks this handle who a request
//! is and applies its permission table. It must not know routes or HTTP.
//!
//! `sso` verifies a WordPress site's sign-on tokens (algorithm, signature, times, roles → tier);
//! a valid one becomes a session (a cookie signed with the engine's session key, kept in the
//! store), judged on every request against the tier gates in force. `limits` holds the rate
//! limits and the brute-force block.

pub mod limits;
pub mod settings;
pub mod sso;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sovereign_core::access::Group;
use sovereign_core::access::{
    check_key, check_name, ApiKey, KeyRefusal, KeyText, Principal, Role, ID_BYTES, SECRET_BYTES,
};
use sovereign_core::error::Invalid;
use sovereign_core::sso::{Session, SessionRefusal, Tier, TierGates, CSRF_BYTES, SESSION_ID_BYTES};
use sovereign_store::{Store, StoreError};
use tokio::sync::watch;

use crate::audit::Audit;
use crate::support::{lock, lock_read, lock_write, Tasks};
pub use limits::Limited;
use limits::Limiters;
pub use settings::{AccessSettings, Mode};
use settings::{SecretSource, SsoSettings};
use sso::{Sso, TokenRefusal};

/// How often refusals go on the audit trail (one record per address).
const REFUSALS_EVERY: Duration = Duration::from_secs(60);

/// Reads a Truth secret `component.key` (set by the engine root once Truth runs).
pub type SecretLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Why a sign-on failed.
#[derive(Debug, thiserror::Error)]
pub enum SignOnError {
    #[error("single sign-on is not configured ([access.sso])")]
    NotConfigured,
    #[error("{}", .0.message())]
    Refused(TokenRefusal),
    #[error("the {0} tier may not use this engine now")]
    Blocked(Tier),
    #[error("the SSO secret is not available: {0}")]
    Secret(String),
    #[error("no random bytes for a session")]
    Random,
    #[error("the session could not be stored: {0}")]
    Store(StoreError),
}

/// Why a session cookie was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionProblem {
    Invalid(SessionRefusal),
    /// Logged out.
    Ended,
    /// Its tier is blocked by the tier gates now.
    Blocked(Tier),
}

impl SessionProblem {
    pub fn message(&self) -> String {
        match self {
            SessionProblem::Invalid(r) => r.message().to_string(),
            SessionProblem::Ended => "this session has ended; sign on again".into(),
            SessionProblem::Blocked(t) => format!("the {t} tier may not use this engine now"),
        }
    }
}

/// A new session: what the cookie holds, and the role it acts with.
#[derive(Debug, Clone)]
pub struct SignedOn {
    pub session: Session,
    pub cookie: String,
    pub role: Role,
}

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
    limits: Limiters,
    sso: Option<SsoSettings>,
    secrets: OnceLock<SecretLookup>,
    /// Signs session cookies; made once, kept in the store.
    session_key: Vec<u8>,
    gates: watch::Sender<TierGates>,
    /// Sessions logged out before they expire: id → expiry (unix seconds).
    ended: Mutex<HashMap<String, i64>>,
}

impl Access {
    /// Load the keys; `loopback_bind` decides the mode when the config does not.
    pub async fn start(
        settings: AccessSettings,
        loopback_bind: bool,
        store: Store,
        audit: Audit,
        tasks: Tasks,
    ) -> Result<Access, StoreError> {
        let keys = store
            .list_keys()
            .await?
            .into_iter()
            .map(|k| (k.id.clone(), k))
            .collect();
        // Sessions exist only with single sign-on: without it no key is made (a fresh start
        // stays one durable write shorter) and no cookie is ever accepted.
        let (session_key, ended) = match &settings.sso {
            Some(_) => (
                session_key(&store).await?,
                store.ended_sessions(Utc::now().timestamp()).await?,
            ),
            None => (Vec::new(), Vec::new()),
        };
        let gates = match store.access_state("tier_gates".into()).await? {
            Some(text) => TierGates::from_text(&text).unwrap_or_default(),
            None => TierGates::default(),
        };
        let ended = ended.into_iter().collect();
        let access = Access(Arc::new(Inner {
            mode: settings.mode_for(loopback_bind),
            trusted_proxies: settings.trusted_proxies,
            hosts: settings.hosts,
            keys: RwLock::new(keys),
            seen: Mutex::new(HashSet::new()),
            store,
            audit,
            limits: Limiters::new(&settings.rate_limits),
            sso: settings.sso,
            secrets: OnceLock::new(),
            session_key,
            gates: watch::Sender::new(gates),
            ended: Mutex::new(ended),
        }));
        let (records, stop) = (access.clone(), tasks.clone());
        tasks.spawn(async move {
            loop {
                let stopping = tokio::select! {
                    _ = stop.stopped() => true,
                    _ = tokio::time::sleep(REFUSALS_EVERY) => false,
                };
                records.record_refusals();
                if stopping {
                    return;
                }
            }
        });
        Ok(access)
    }

    /// Put the refusals counted since the last time on the audit trail, one record per address.
    fn record_refusals(&self) {
        for (address, refused) in self.0.limits.take_refusals() {
            self.0.audit.record(
                "access",
                "access.refused",
                json!({"address": address.to_string(), "count": refused.count, "reasons": refused.reasons}),
            );
        }
        let now = Utc::now().timestamp();
        lock(&self.0.ended).retain(|_, expires| *expires > now);
    }

    /// Where Truth secrets (`access.sso.secret_from`) are read from.
    pub fn read_secrets_with(&self, lookup: SecretLookup) {
        let _ = self.0.secrets.set(lookup);
    }

    /// Spend one request of `group` from `address`; refused when its bucket is empty or the
    /// address is blocked after failed authentications.
    pub fn admit(&self, group: Group, address: IpAddr) -> Result<(), Limited> {
        self.0.limits.admit_address(group, address)
    }

    /// Spend one request of `group` by a principal (keys and sessions have budgets by name).
    pub fn admit_principal(
        &self,
        group: Group,
        principal: &Principal,
        address: IpAddr,
    ) -> Result<(), Limited> {
        match principal {
            Principal::Local => Ok(()),
            p => self.0.limits.admit_key(group, || p.actor(), address),
        }
    }

    /// A credential refused from `address` (counts toward its brute-force block).
    pub fn failed(&self, address: IpAddr, reason: &'static str) {
        self.0.limits.failed(address, reason);
    }

    pub fn sso_enabled(&self) -> bool {
        self.0.sso.is_some()
    }

    fn verifier(&self) -> Result<Sso, SignOnError> {
        let settings = self.0.sso.clone().ok_or(SignOnError::NotConfigured)?;
        let secret = match &settings.secret {
            SecretSource::Inline(s) => s.clone(),
            SecretSource::Truth(reference) => self
                .0
                .secrets
                .get()
                .and_then(|lookup| lookup(reference))
                .ok_or_else(|| {
                    SignOnError::Secret(format!("Truth has no value for {reference:?}"))
                })?
                .into_bytes(),
        };
        Sso::new(settings, &secret).map_err(|e| SignOnError::Secret(e.message))
    }

    /// Turn a valid sign-on token into a session (refused for a blocked tier).
    pub async fn sign_on(&self, token: &str, from: IpAddr) -> Result<SignedOn, SignOnError> {
        use ring::rand::SecureRandom;
        let sso = self.verifier()?;
        let now = Utc::now().timestamp();
        let verified = sso.verify(token, now).map_err(|r| {
            self.failed(from, r.code());
            SignOnError::Refused(r)
        })?;
        if !self.tier_gates().allows(verified.tier) {
            return Err(SignOnError::Blocked(verified.tier));
        }
        let rng = ring::rand::SystemRandom::new();
        let (mut id, mut csrf) = ([0u8; SESSION_ID_BYTES], [0u8; CSRF_BYTES]);
        rng.fill(&mut id).map_err(|_| SignOnError::Random)?;
        rng.fill(&mut csrf).map_err(|_| SignOnError::Random)?;
        let ttl = i64::try_from(sso.settings().session_ttl.as_secs()).unwrap_or(i64::MAX);
        let session = Session::new(
            &id,
            &csrf,
            &verified.subject,
            verified.tier,
            now.saturating_add(ttl),
        );
        let role = sso.role_for(verified.tier);
        self.0.audit.record(
            &format!("sso:{}", verified.subject),
            "session.started",
            json!({"tier": verified.tier.as_str(), "role": role.as_str(), "address": from.to_string()}),
        );
        Ok(SignedOn {
            cookie: session.encode(&self.0.session_key),
            session,
            role,
        })
    }

    /// The session a cookie holds, and who it acts as; judged against the gates in force.
    pub fn session(&self, cookie: &str) -> Result<(Session, Principal), SessionProblem> {
        if self.0.sso.is_none() {
            return Err(SessionProblem::Invalid(SessionRefusal::Malformed));
        }
        let now = Utc::now().timestamp();
        let session =
            Session::decode(cookie, &self.0.session_key, now).map_err(SessionProblem::Invalid)?;
        if lock(&self.0.ended).contains_key(&session.id) {
            return Err(SessionProblem::Ended);
        }
        if !self.tier_gates().allows(session.tier) {
            return Err(SessionProblem::Blocked(session.tier));
        }
        let role = self
            .0
            .sso
            .as_ref()
            .map_or(Role::Viewer, |s| s.role_for(session.tier));
        let principal = Principal::Session {
            subject: session.subject.clone(),
            tier: session.tier,
            role,
        };
        Ok((session, principal))
    }

    /// End a session before its time (log out); it is refused from the next request on.
    pub async fn sign_off(&self, session: &Session) -> Result<(), StoreError> {
        lock(&self.0.ended).insert(session.id.clone(), session.expires_at);
        self.0
            .store
            .end_session(session.id.clone(), session.expires_at)
            .await?;
        self.0.audit.record(
            &format!("sso:{}", session.subject),
            "session.ended",
            json!({"tier": session.tier.as_str()}),
        );
        Ok(())
    }

    /// The tier gates in force.
    pub fn tier_gates(&self) -> TierGates {
        *self.0.gates.borrow()
    }

    /// Follow the tier gates (open streams of a session end when its tier is blocked).
    pub fn watch_gates(&self) -> watch::Receiver<TierGates> {
        self.0.gates.subscribe()
    }

    /// Change the tier gates from a `{"allowed_tiers": {…}}` body: stored, audited, and in
    /// force from the next request on.
    pub async fn set_tier_gates(
        &self,
        body: &serde_json::Value,
        actor: &str,
    ) -> Result<TierGates, AccessError> {
        let current = self.tier_gates();
        let next = current.parse_body(body).map_err(AccessError::Invalid)?;
        self.0
            .store
            .put_access_state("tier_gates".into(), next.to_text())
            .await
            .map_err(AccessError::Store)?;
        self.0.gates.send_replace(next);
        let changes: serde_json::Map<String, serde_json::Value> = current
            .changes(&next)
            .into_iter()
            .map(|(t, allowed)| (t.as_str().to_string(), allowed.into()))
            .collect();
        self.0.audit.record(
            actor,
            "tier_gates.changed",
            json!({"changes": changes, "allowed_tiers": next.to_json()["allowed_tiers"]}),
        );
        Ok(next)
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
    /// A refusal counts toward the address's brute-force block.
    pub fn authenticate(&self, key: &str, address: IpAddr) -> Result<Principal, KeyRefusal> {
        let checked = KeyText::parse(key)
            .ok_or(KeyRefusal::Malformed)
            .and_then(|presented| {
                let keys = lock_read(&self.0.keys);
                check_key(&presented, keys.get(&presented.id), Utc::now()).map(|p| (presented, p))
            });
        let (presented, principal) = checked.inspect_err(|r| self.failed(address, r.code()))?;
        let now = Utc::now();
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

/// The key session cookies are signed with: made once, kept in the store.
async fn session_key(store: &Store) -> Result<Vec<u8>, StoreError> {
    if let Some(stored) = store.access_state("session_key".into()).await? {
        if let Ok(key) = hex::decode(stored) {
            if key.len() == 32 {
                return Ok(key);
            }
        }
    }
    let mut fresh = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut fresh)
        .map_err(|_| StoreError::Corrupt("no random bytes for the session key".into()))?;
    store
        .put_access_state("session_key".into(), hex::encode(fresh))
        .await?;
    Ok(fresh.to_vec())
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
