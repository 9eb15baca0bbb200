//! `[access]`: when requests need a key, which proxies' forwarded addresses are believed, and
//! `[access.sso]`, single sign-on from a WordPress site (its JWT secret, algorithm, where the
//! roles are in a token, roles → tiers, tiers → API roles). The secret is never shown in
//! `Debug`; a `secret_from` Truth reference is kept as written, for the engine to resolve.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use sovereign_core::access::{Group, Rate, Role};
use sovereign_core::error::Invalid;
use sovereign_core::schedule::parse_duration;
use sovereign_core::sso::{default_tiers, Tier};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessFile {
    /// `local` (requests from this machine need no key) or `keys` (every request does, but
    /// `GET /health` and the routes with their own secret). Default: `local` when the server
    /// binds a loopback address, `keys` otherwise.
    pub mode: Option<String>,
    /// Proxies whose `X-Forwarded-For` client address is believed (never for `local` trust).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Host names the engine answers to besides IP addresses and `localhost` (a request with
    /// any other `Host` is refused: DNS rebinding).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// `[access.sso]`: sign-on with a WordPress site's tokens (off when absent).
    pub sso: Option<SsoFile>,
    /// `[access.rate_limits]`: token buckets per client address and per key.
    #[serde(default)]
    pub rate_limits: RateLimitsFile,
}

/// `[access.rate_limits]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsFile {
    /// Limit loopback addresses by address too (default false: scripts on this machine
    /// are limited only per key).
    pub loopback: Option<bool>,
    /// Failed authentications allowed per address (default "10/min", a burst of 10); past
    /// it every request from that address is refused until the bucket refills.
    pub failed_auth: Option<String>,
    pub public: Option<GroupLimitFile>,
    pub webhook: Option<GroupLimitFile>,
    pub read: Option<GroupLimitFile>,
    pub trade: Option<GroupLimitFile>,
    pub admin: Option<GroupLimitFile>,
}

/// One group's limits as written: `per_address = "20/s"` (or "off"), `per_key`, `burst`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupLimitFile {
    pub per_address: Option<String>,
    pub per_key: Option<String>,
    pub burst: Option<u32>,
}

/// One group's buckets: a sustained rate per address and per key, and the burst both allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimit {
    pub per_address: Option<Rate>,
    pub per_key: Option<Rate>,
    pub burst: u32,
}

/// `[access.rate_limits]`, validated; one [`GroupLimit`] per [`Group`] (by `Group::index`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    pub loopback: bool,
    pub failed_auth: Rate,
    pub failed_burst: u32,
    pub groups: [GroupLimit; 5],
}

impl Default for RateLimits {
    fn default() -> Self {
        let group = |count, burst| GroupLimit {
            per_address: Some(Rate { count, per_secs: 1 }),
            per_key: None,
            burst,
        };
        RateLimits {
            loopback: false,
            failed_auth: Rate {
                count: 10,
                per_secs: 60,
            },
            failed_burst: 10,
            // public, webhook, read, trade, admin
            groups: [
                group(20, 40),
                group(20, 40),
                group(50, 100),
                group(20, 40),
                group(10, 20),
            ],
        }
    }
}

fn rate_limits(file: RateLimitsFile, problems: &mut Vec<Invalid>) -> RateLimits {
    let mut limits = RateLimits::default();
    if let Some(l) = file.loopback {
        limits.loopback = l;
    }
    if let Some(text) = &file.failed_auth {
        match Rate::parse(text, "access.rate_limits.failed_auth") {
            Ok(r) => {
                limits.failed_auth = r;
                limits.failed_burst = r.count.min(1000);
            }
            Err(e) => problems.push(e),
        }
    }
    let groups = [file.public, file.webhook, file.read, file.trade, file.admin];
    for (group, written) in Group::ALL.into_iter().zip(groups) {
        let Some(written) = written else { continue };
        let slot = &mut limits.groups[group.index()];
        let field = |name: &str| format!("access.rate_limits.{}.{name}", group.as_str());
        let rate = |text: &Option<String>, name: &str, problems: &mut Vec<Invalid>| match text
            .as_deref()
        {
            None => None,
            Some("off") => Some(None),
            Some(t) => match Rate::parse(t, &field(name)) {
                Ok(r) => Some(Some(r)),
                Err(e) => {
                    problems.push(e);
                    None
                }
            },
        };
        if let Some(r) = rate(&written.per_address, "per_address", problems) {
            slot.per_address = r;
        }
        if let Some(r) = rate(&written.per_key, "per_key", problems) {
            slot.per_key = r;
        }
        match written.burst {
            Some(0) => problems.push(Invalid::new(
                "invalid_count",
                field("burst"),
                "a burst must allow at least 1 request",
            )),
            Some(b) => slot.burst = b,
            None => {}
        }
    }
    limits
}

/// `[access.sso]` as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsoFile {
    /// The WordPress site's JWT secret (a secret: never shown).
    pub secret: Option<String>,
    /// Or where Truth keeps it: `component.key`.
    pub secret_from: Option<String>,
    /// `HS256` (default), `HS384` or `HS512`.
    pub algorithm: Option<String>,
    /// Dotted path of the roles in a token's claims (default `data.user.roles`).
    pub roles_claim: Option<String>,
    /// WordPress role → tier; when given, the whole map (default: subscriber → observer, and
    /// activator, navigator, coaching, administrator → the tier of their name).
    pub tiers: Option<BTreeMap<String, String>>,
    /// Clock skew allowed on `exp`/`nbf` (default 30s, at most 5m).
    pub leeway: Option<String>,
    /// How long a session lasts (default 12h, from 1m to 30 days).
    pub session_ttl: Option<String>,
    /// Tier → API role (viewer, trader, admin), over the defaults (observer, activator →
    /// viewer; navigator, coaching → trader; administrator → admin).
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
}

impl fmt::Debug for SsoFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsoFile")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("secret_from", &self.secret_from)
            .field("algorithm", &self.algorithm)
            .field("roles_claim", &self.roles_claim)
            .field("tiers", &self.tiers)
            .field("leeway", &self.leeway)
            .field("session_ttl", &self.session_ttl)
            .field("roles", &self.roles)
            .finish()
    }
}

/// When requests need a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Local,
    Keys,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessSettings {
    /// `None`: decided by the bind address.
    pub mode: Option<Mode>,
    pub trusted_proxies: Vec<IpAddr>,
    /// Lower-case host names, besides IP addresses and `localhost`.
    pub hosts: Vec<String>,
    /// Single sign-on, when configured.
    pub sso: Option<SsoSettings>,
    pub rate_limits: RateLimits,
}

/// Where the SSO secret comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the config.
    Inline(Vec<u8>),
    /// A Truth reference, `component.key`, resolved by the engine.
    Truth(String),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Inline(_) => f.write_str("Inline(<redacted>)"),
            SecretSource::Truth(r) => f.debug_tuple("Truth").field(r).finish(),
        }
    }
}

/// The HMAC algorithms a shared secret can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HmacAlg {
    #[default]
    Hs256,
    Hs384,
    Hs512,
}

impl HmacAlg {
    pub const ALL: [HmacAlg; 3] = [HmacAlg::Hs256, HmacAlg::Hs384, HmacAlg::Hs512];

    /// The JWT header's name for it (`HS256`).
    pub fn as_str(self) -> &'static str {
        match self {
            HmacAlg::Hs256 => "HS256",
            HmacAlg::Hs384 => "HS384",
            HmacAlg::Hs512 => "HS512",
        }
    }
}

/// The default roles claim.
pub const DEFAULT_ROLES_CLAIM: &str = "data.user.roles";
/// The default clock skew allowed on `exp`/`nbf`, and the most allowed.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
pub const MAX_LEEWAY_SECS: u64 = 300;
/// The default session lifetime, and the bounds allowed.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
pub const MIN_SESSION_TTL: Duration = Duration::from_secs(60);
pub const MAX_SESSION_TTL: Duration = Duration::from_secs(30 * 86_400);

/// `[access.sso]`, validated.
#[derive(Clone, PartialEq, Eq)]
pub struct SsoSettings {
    pub secret: SecretSource,
    pub algorithm: HmacAlg,
    /// Dotted path of the roles in a token's claims.
    pub roles_claim: String,
    /// Lower-case WordPress role → tier.
    pub tiers: BTreeMap<String, Tier>,
    /// Clock skew allowed on `exp`/`nbf`, in seconds.
    pub leeway_secs: u64,
    pub session_ttl: Duration,
    /// Tier → API role; every tier is in it.
    pub roles: BTreeMap<Tier, Role>,
}

impl fmt::Debug for SsoSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsoSettings")
            .field("secret", &self.secret)
            .field("algorithm", &self.algorithm)
            .field("roles_claim", &self.roles_claim)
            .field("tiers", &self.tiers)
            .field("leeway_secs", &self.leeway_secs)
            .field("session_ttl", &self.session_ttl)
            .field("roles", &self.roles)
            .finish()
    }
}

impl SsoSettings {
    /// The defaults around a secret.
    pub fn new(secret: SecretSource) -> SsoSettings {
        SsoSettings {
            secret,
            algorithm: HmacAlg::default(),
            roles_claim: DEFAULT_ROLES_CLAIM.to_string(),
            tiers: default_tiers(),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            session_ttl: DEFAULT_SESSION_TTL,
            roles: default_roles(),
        }
    }

    /// The API role a tier's members act with.
    pub fn role_for(&self, tier: Tier) -> Role {
        self.roles
            .get(&tier)
            .copied()
            .unwrap_or_else(|| default_role(tier))
    }
}

/// observer, activator → viewer; navigator, coaching → trader; administrator → admin.
pub fn default_roles() -> BTreeMap<Tier, Role> {
    Tier::ALL
        .into_iter()
        .map(|t| (t, default_role(t)))
        .collect()
}

fn default_role(tier: Tier) -> Role {
    match tier {
        Tier::Observer | Tier::Activator => Role::Viewer,
        Tier::Navigator | Tier::Coaching => Role::Trader,
        Tier::Administrator => Role::Admin,
    }
}

impl AccessSettings {
    /// The mode in force for a server bound to a loopback address or not.
    pub fn mode_for(&self, loopback_bind: bool) -> Mode {
        self.mode.unwrap_or(if loopback_bind {
            Mode::Local
        } else {
            Mode::Keys
        })
    }
}

pub fn settings(file: AccessFile) -> Result<AccessSettings, Vec<Invalid>> {
    let mut problems = Vec::new();
    let mode = match file.mode.as_deref() {
        None => None,
        Some("local") => Some(Mode::Local),
        Some("keys") => Some(Mode::Keys),
        Some(other) => {
            problems.push(Invalid::new(
                "invalid_mode",
                "access.mode",
                format!("access.mode must be local or keys, not {other:?}"),
            ));
            None
        }
    };
    let mut trusted_proxies = Vec::new();
    for (i, p) in file.trusted_proxies.iter().enumerate() {
        match p.parse::<IpAddr>() {
            Ok(ip) => trusted_proxies.push(ip),
            Err(_) => problems.push(Invalid::new(
                "invalid_address",
                format!("access.trusted_proxies[{i}]"),
                format!("{p:?} is not an IP address"),
            )),
        }
    }
    let sso = match file.sso {
        None => None,
        Some(f) => match sso_settings(f) {
            Ok(s) => Some(s),
            Err(mut p) => {
                problems.append(&mut p);
                None
            }
        },
    };
    let rate_limits = rate_limits(file.rate_limits, &mut problems);
    if problems.is_empty() {
        Ok(AccessSettings {
            mode,
            trusted_proxies,
            hosts: file.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            sso,
            rate_limits,
        })
    } else {
        Err(problems)
    }
}

/// `[access.sso]` into [`SsoSettings`], every problem collected.
fn sso_settings(file: SsoFile) -> Result<SsoSettings, Vec<Invalid>> {
    let mut problems = Vec::new();
    let secret = match (file.secret, file.secret_from) {
        (Some(_), Some(_)) => {
            problems.push(Invalid::new(
                "conflicting_secret",
                "access.sso.secret",
                "give access.sso.secret or access.sso.secret_from, not both",
            ));
            None
        }
        (None, None) => {
            problems.push(Invalid::new(
                "missing_secret",
                "access.sso.secret",
                "access.sso needs the WordPress site's JWT secret: secret = \"…\" or \
                 secret_from = \"component.key\" (from Truth)",
            ));
            None
        }
        (Some(s), None) if s.is_empty() => {
            problems.push(Invalid::new(
                "empty_secret",
                "access.sso.secret",
                "access.sso.secret is empty: anyone could sign a token",
            ));
            None
        }
        (Some(s), None) => Some(SecretSource::Inline(s.into_bytes())),
        (None, Some(r)) => {
            let valid = r.split_once('.').is_some_and(|(component, key)| {
                let part_ok = |p: &str| !p.is_empty() && !p.chars().any(char::is_whitespace);
                part_ok(component) && part_ok(key)
            });
            if valid {
                Some(SecretSource::Truth(r))
            } else {
                problems.push(Invalid::new(
                    "invalid_reference",
                    "access.sso.secret_from",
                    format!(
                        "access.sso.secret_from must name a Truth value as component.key, \
                         not {r:?}"
                    ),
                ));
                None
            }
        }
    };

    let algorithm = match file.algorithm.as_deref().map(str::trim) {
        None => HmacAlg::default(),
        Some(a) => match HmacAlg::ALL
            .into_iter()
            .find(|h| h.as_str().eq_ignore_ascii_case(a))
        {
            Some(h) => h,
            None => {
                let why = if a.eq_ignore_ascii_case("none") {
                    "\"none\" means unsigned tokens, which are never accepted".to_string()
                } else {
                    format!(
                        "{a:?} is not an HMAC algorithm: the secret is shared with the \
                         WordPress site, so only HMAC algorithms apply"
                    )
                };
                problems.push(Invalid::new(
                    "invalid_algorithm",
                    "access.sso.algorithm",
                    format!("access.sso.algorithm must be HS256, HS384 or HS512: {why}"),
                ));
                HmacAlg::default()
            }
        },
    };

    let roles_claim = match file.roles_claim {
        None => DEFAULT_ROLES_CLAIM.to_string(),
        Some(path) => {
            let path = path.trim().to_string();
            let valid = !path.is_empty()
                && path
                    .split('.')
                    .all(|seg| !seg.is_empty() && !seg.chars().any(char::is_whitespace));
            if !valid {
                problems.push(Invalid::new(
                    "invalid_claim_path",
                    "access.sso.roles_claim",
                    format!(
                        "access.sso.roles_claim must be a dotted path such as \
                         data.user.roles, not {path:?}"
                    ),
                ));
            }
            path
        }
    };

    let tiers = match file.tiers {
        None => default_tiers(),
        Some(table) => {
            let mut tiers = BTreeMap::new();
            if table.is_empty() {
                problems.push(Invalid::new(
                    "empty_tiers",
                    "access.sso.tiers",
                    "access.sso.tiers maps no role to a tier: every sign-on would be refused",
                ));
            }
            for (role, tier_name) in &table {
                let field = format!("access.sso.tiers.{role}");
                let name = role.trim().to_lowercase();
                if name.is_empty() {
                    problems.push(Invalid::new(
                        "invalid_role_name",
                        field,
                        "a WordPress role name cannot be empty",
                    ));
                    continue;
                }
                let Some(tier) = Tier::parse(&tier_name.trim().to_ascii_lowercase()) else {
                    problems.push(unknown_tier(field, tier_name));
                    continue;
                };
                if tiers.insert(name.clone(), tier).is_some() {
                    problems.push(Invalid::new(
                        "duplicate_role",
                        field,
                        format!("the role {name:?} is mapped twice (role names ignore case)"),
                    ));
                }
            }
            tiers
        }
    };

    let leeway_secs = match file.leeway.as_deref() {
        None => DEFAULT_LEEWAY_SECS,
        Some(t) => match parse_duration("access.sso.leeway", t) {
            Ok(d) if d.subsec_nanos() != 0 => {
                problems.push(Invalid::new(
                    "invalid_duration",
                    "access.sso.leeway",
                    "access.sso.leeway must be whole seconds",
                ));
                DEFAULT_LEEWAY_SECS
            }
            Ok(d) if d.as_secs() > MAX_LEEWAY_SECS => {
                problems.push(Invalid::new(
                    "leeway_too_long",
                    "access.sso.leeway",
                    format!(
                        "access.sso.leeway is {t:?}; at most {MAX_LEEWAY_SECS}s of clock skew \
                         is allowed"
                    ),
                ));
                DEFAULT_LEEWAY_SECS
            }
            Ok(d) => d.as_secs(),
            Err(e) => {
                problems.push(e);
                DEFAULT_LEEWAY_SECS
            }
        },
    };

    let session_ttl = match file.session_ttl.as_deref() {
        None => DEFAULT_SESSION_TTL,
        Some(t) => match parse_duration("access.sso.session_ttl", t) {
            Ok(d) if (MIN_SESSION_TTL..=MAX_SESSION_TTL).contains(&d) => d,
            Ok(_) => {
                problems.push(Invalid::new(
                    "invalid_session_ttl",
                    "access.sso.session_ttl",
                    format!("access.sso.session_ttl is {t:?}; it must be from 1m to 30 days"),
                ));
                DEFAULT_SESSION_TTL
            }
            Err(e) => {
                problems.push(e);
                DEFAULT_SESSION_TTL
            }
        },
    };

    let mut roles = default_roles();
    for (tier_name, role_name) in &file.roles {
        let field = format!("access.sso.roles.{tier_name}");
        let Some(tier) = Tier::parse(&tier_name.trim().to_ascii_lowercase()) else {
            problems.push(unknown_tier(field, tier_name));
            continue;
        };
        match Role::parse(role_name.trim()) {
            Ok(role) => {
                roles.insert(tier, role);
            }
            Err(e) => problems.push(Invalid::new(
                e.code,
                field,
                format!("{tier}: {}", e.message),
            )),
        }
    }

    match secret {
        Some(secret) if problems.is_empty() => Ok(SsoSettings {
            secret,
            algorithm,
            roles_claim,
            tiers,
            leeway_secs,
            session_ttl,
            roles,
        }),
        _ => Err(problems),
    }
}

fn unknown_tier(field: String, name: &str) -> Invalid {
    let names: Vec<&str> = Tier::ALL.into_iter().map(Tier::as_str).collect();
    Invalid::new(
        "unknown_tier",
        field,
        format!("{name:?} is not a tier: the tiers are {}", names.join(", ")),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sso_file(secret: &str) -> SsoFile {
        SsoFile {
            secret: Some(secret.to_string()),
            ..SsoFile::default()
        }
    }

    fn with_sso(sso: SsoFile) -> Result<AccessSettings, Vec<Invalid>> {
        settings(AccessFile {
            sso: Some(sso),
            ..AccessFile::default()
        })
    }

    fn codes(r: Result<AccessSettings, Vec<Invalid>>) -> Vec<(&'static str, String)> {
        r.unwrap_err()
            .into_iter()
            .map(|i| (i.code, i.field.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn sso_is_off_unless_configured_and_has_defaults() {
        assert_eq!(settings(AccessFile::default()).unwrap().sso, None);
        let s = with_sso(sso_file("wp-secret")).unwrap().sso.unwrap();
        assert_eq!(
            s,
            SsoSettings::new(SecretSource::Inline(b"wp-secret".to_vec()))
        );
        assert_eq!(s.algorithm, HmacAlg::Hs256);
        assert_eq!(s.roles_claim, "data.user.roles");
        assert_eq!(s.tiers.get("subscriber"), Some(&Tier::Observer));
        assert_eq!(s.leeway_secs, 30);
        assert_eq!(s.session_ttl, Duration::from_secs(12 * 3600));
        let roles = Tier::ALL.map(|t| s.role_for(t));
        assert_eq!(
            roles,
            [
                Role::Viewer,
                Role::Viewer,
                Role::Trader,
                Role::Trader,
                Role::Admin
            ]
        );
    }

    #[test]
    fn every_sso_field_is_read() {
        let file = SsoFile {
            secret: None,
            secret_from: Some("wordpress.jwt_secret".into()),
            algorithm: Some("hs512".into()),
            roles_claim: Some("roles".into()),
            tiers: Some(
                [("Customer", "activator"), ("editor", "Coaching")]
                    .into_iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
            ),
            leeway: Some("10s".into()),
            session_ttl: Some("1h".into()),
            roles: [("activator".to_string(), "trader".to_string())].into(),
        };
        let s = with_sso(file).unwrap().sso.unwrap();
        assert_eq!(s.secret, SecretSource::Truth("wordpress.jwt_secret".into()));
        assert_eq!(s.algorithm, HmacAlg::Hs512);
        assert_eq!(s.roles_claim, "roles");
        let want = BTreeMap::from([
            ("customer".to_string(), Tier::Activator),
            ("editor".to_string(), Tier::Coaching),
        ]);
        assert_eq!(s.tiers, want);
        assert_eq!(
            (s.leeway_secs, s.session_ttl),
            (10, Duration::from_secs(3600))
        );
        assert_eq!(s.role_for(Tier::Activator), Role::Trader);
        assert_eq!(s.role_for(Tier::Observer), Role::Viewer);
    }

    #[test]
    fn bad_sso_settings_are_refused_with_their_field() {
        let alg = |a: &str| SsoFile {
            algorithm: Some(a.into()),
            ..sso_file("k")
        };
        // (file, [(code, field)])
        let cases: Vec<(SsoFile, Vec<(&str, &str)>)> = vec![
            (
                SsoFile::default(),
                vec![("missing_secret", "access.sso.secret")],
            ),
            (
                SsoFile {
                    secret_from: Some("wp.secret".into()),
                    ..sso_file("k")
                },
                vec![("conflicting_secret", "access.sso.secret")],
            ),
            (sso_file(""), vec![("empty_secret", "access.sso.secret")]),
            (
                SsoFile {
                    secret_from: Some("wordpress".into()),
                    ..SsoFile::default()
                },
                vec![("invalid_reference", "access.sso.secret_from")],
            ),
            (
                SsoFile {
                    secret_from: Some(".key".into()),
                    ..SsoFile::default()
                },
                vec![("invalid_reference", "access.sso.secret_from")],
            ),
            (
                alg("none"),
                vec![("invalid_algorithm", "access.sso.algorithm")],
            ),
            (
                alg("RS256"),
                vec![("invalid_algorithm", "access.sso.algorithm")],
            ),
            (alg(""), vec![("invalid_algorithm", "access.sso.algorithm")]),
            (
                SsoFile {
                    roles_claim: Some("data..roles".into()),
                    ..sso_file("k")
                },
                vec![("invalid_claim_path", "access.sso.roles_claim")],
            ),
            (
                SsoFile {
                    tiers: Some(BTreeMap::new()),
                    ..sso_file("k")
                },
                vec![("empty_tiers", "access.sso.tiers")],
            ),
            (
                SsoFile {
                    tiers: Some([("subscriber".to_string(), "gold".to_string())].into()),
                    ..sso_file("k")
                },
                vec![("unknown_tier", "access.sso.tiers.subscriber")],
            ),
            (
                SsoFile {
                    tiers: Some(
                        [
                            ("Editor".to_string(), "observer".to_string()),
                            ("editor".to_string(), "navigator".to_string()),
                        ]
                        .into(),
                    ),
                    ..sso_file("k")
                },
                vec![("duplicate_role", "access.sso.tiers.editor")],
            ),
            (
                SsoFile {
                    leeway: Some("1h".into()),
                    ..sso_file("k")
                },
                vec![("leeway_too_long", "access.sso.leeway")],
            ),
            (
                SsoFile {
                    leeway: Some("1500ms".into()),
                    ..sso_file("k")
                },
                vec![("invalid_duration", "access.sso.leeway")],
            ),
            (
                SsoFile {
                    leeway: Some("soon".into()),
                    ..sso_file("k")
                },
                vec![("invalid_duration", "access.sso.leeway")],
            ),
            (
                SsoFile {
                    session_ttl: Some("5s".into()),
                    ..sso_file("k")
                },
                vec![("invalid_session_ttl", "access.sso.session_ttl")],
            ),
            (
                SsoFile {
                    roles: [("gold".to_string(), "admin".to_string())].into(),
                    ..sso_file("k")
                },
                vec![("unknown_tier", "access.sso.roles.gold")],
            ),
            (
                SsoFile {
                    roles: [("observer".to_string(), "operator".to_string())].into(),
                    ..sso_file("k")
                },
                vec![("invalid_role", "access.sso.roles.observer")],
            ),
            (
                SsoFile {
                    algorithm: Some("none".into()),
                    session_ttl: Some("90d".into()),
                    ..SsoFile::default()
                },
                vec![
                    ("missing_secret", "access.sso.secret"),
                    ("invalid_algorithm", "access.sso.algorithm"),
                    ("invalid_session_ttl", "access.sso.session_ttl"),
                ],
            ),
        ];
        for (i, (file, want)) in cases.into_iter().enumerate() {
            let got = codes(with_sso(file));
            let want: Vec<(&str, String)> =
                want.into_iter().map(|(c, f)| (c, f.to_string())).collect();
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn the_secret_is_never_shown() {
        let file = sso_file("hunter2-wp-secret");
        assert!(!format!("{file:?}").contains("hunter2"));
        let s = with_sso(sso_file("hunter2-wp-secret")).unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("<redacted>"),
            "{shown}"
        );
        let none = alg_message("none");
        assert!(none.contains("never accepted"), "{none}");
        let rs = alg_message("RS256");
        assert!(rs.contains("only HMAC"), "{rs}");
    }

    fn alg_message(alg: &str) -> String {
        let r = with_sso(SsoFile {
            algorithm: Some(alg.into()),
            ..sso_file("k")
        });
        r.unwrap_err().remove(0).message
    }
}
