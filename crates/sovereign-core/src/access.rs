//! Access control's decisions: roles, what a route needs, API keys' text form and their hashes,
//! and who a request is.
//!
//! Pure: no randomness (the shell draws a key's bytes), no clock (expiry is judged against a
//! `now` given in), no store. An API key is `sov_<id>_<secret>`: the prefix lets secret scanners
//! find a leaked key, the 12-hex-digit id finds the key's record without touching the secret,
//! and the store keeps only the SHA-256 of the secret (keys are 160 random bits, so a fast hash
//! is the right one), compared in constant time.

use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};

use crate::error::Invalid;
use crate::webhook::constant_time_eq;

/// The prefix of every API key.
pub const KEY_PREFIX: &str = "sov_";
/// Bytes of a key's id and of its secret.
pub const ID_BYTES: usize = 6;
pub const SECRET_BYTES: usize = 20;

/// What a key may do; each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads.
    Viewer,
    /// Reads, orders, cancels, flattens, runs tasks, posts signals.
    Trader,
    /// Everything.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Trader, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Trader => "trader",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Result<Role, Invalid> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| {
                Invalid::new(
                    "invalid_role",
                    "role",
                    format!("role must be viewer, trader or admin, not {text:?}"),
                )
            })
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone (`GET /health`).
    Public,
    /// Its own credential (a webhook source's secret, a strategy's secret), or a key.
    OwnSecret,
    /// A key (or session) with at least this role.
    Role(Role),
}

impl Need {
    pub fn as_str(self) -> &'static str {
        match self {
            Need::Public => "public",
            Need::OwnSecret => "own secret",
            Need::Role(r) => r.as_str(),
        }
    }
}

/// The rate-limit group of a route: what it needs decides which budget it spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    Public,
    Webhook,
    Read,
    Trade,
    Admin,
}

impl Group {
    pub const ALL: [Group; 5] = [
        Group::Public,
        Group::Webhook,
        Group::Read,
        Group::Trade,
        Group::Admin,
    ];

    pub fn of(need: Need) -> Group {
        match need {
            Need::Public => Group::Public,
            Need::OwnSecret => Group::Webhook,
            Need::Role(Role::Viewer) => Group::Read,
            Need::Role(Role::Trader) => Group::Trade,
            Need::Role(Role::Admin) => Group::Admin,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Group::Public => "public",
            Group::Webhook => "webhook",
            Group::Read => "read",
            Group::Trade => "trade",
            Group::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Group> {
        Group::ALL.into_iter().find(|g| g.as_str() == text)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// A sustained rate, `count` per `per_secs` seconds (`"20/s"`, `"600/min"`, `"1000/h"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per_secs: u32,
}

impl Rate {
    pub fn parse(text: &str, field: &str) -> Result<Rate, Invalid> {
        let bad = || {
            Invalid::new(
                "invalid_rate",
                field,
                format!("{text:?} is not a rate: write a count per s, min or h, like \"20/s\" or \"600/min\""),
            )
        };
        let (count, unit) = text.trim().split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let per_secs = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err(Invalid::new(
                "invalid_rate",
                field,
                format!("{field} must allow at least 1 request"),
            ));
        }
        Ok(Rate { count, per_secs })
    }

    /// The time one request's budget takes to come back, in nanoseconds (at least 1).
    pub fn interval_nanos(self) -> u64 {
        (u64::from(self.per_secs) * 1_000_000_000 / u64::from(self.count)).max(1)
    }
}

/// A key as written: its id and its secret, both lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyText {
    pub id: String,
    secret: String,
}

impl KeyText {
    /// The key made of these random bytes.
    pub fn from_bytes(id: &[u8; ID_BYTES], secret: &[u8; SECRET_BYTES]) -> KeyText {
        KeyText {
            id: hex::encode(id),
            secret: hex::encode(secret),
        }
    }

    /// Read `sov_<12 hex>_<40 hex>`; anything else is `None` (never a panic, never a partial key).
    pub fn parse(text: &str) -> Option<KeyText> {
        let rest = text.trim().strip_prefix(KEY_PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let hex_of = |s: &str, n: usize| {
            s.len() == 2 * n
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        (hex_of(id, ID_BYTES) && hex_of(secret, SECRET_BYTES)).then(|| KeyText {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// The whole key, to show once.
    pub fn reveal(&self) -> String {
        format!("{KEY_PREFIX}{}_{}", self.id, self.secret)
    }

    /// What the store keeps: the SHA-256 of the secret, hex.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.secret.as_bytes()))
    }

    /// Whether this key's secret hashes to `stored` (constant time).
    pub fn matches(&self, stored: &str) -> bool {
        constant_time_eq(self.hash().as_bytes(), stored.as_bytes())
    }
}

/// A key as the engine holds it (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credential, from the machine itself, in `local` mode: trusted like the owner.
    Local,
    /// An API key, by name.
    Key { name: String, role: Role },
    /// A single sign-on session: who signed on, their tier and the role it gives.
    Session {
        subject: String,
        tier: crate::sso::Tier,
        role: Role,
    },
}

impl Principal {
    pub fn role(&self) -> Role {
        match self {
            Principal::Local => Role::Admin,
            Principal::Key { role, .. } | Principal::Session { role, .. } => *role,
        }
    }

    /// The actor the audit trail names.
    pub fn actor(&self) -> String {
        match self {
            Principal::Local => "local".into(),
            Principal::Key { name, .. } => format!("key:{name}"),
            Principal::Session { subject, .. } => format!("sso:{subject}"),
        }
    }
}

/// Why a key was refused. The message never contains the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    Malformed,
    Unknown,
    Revoked,
    Expired,
}

impl KeyRefusal {
    /// What the aggregated refusal records count it as.
    pub fn code(self) -> &'static str {
        match self {
            KeyRefusal::Malformed => "malformed_key",
            KeyRefusal::Unknown => "unknown_key",
            KeyRefusal::Revoked => "revoked_key",
            KeyRefusal::Expired => "expired_key",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            KeyRefusal::Malformed => "the API key is not a Sovereign key (sov_…)",
            KeyRefusal::Unknown => "the API key is not known",
            KeyRefusal::Revoked => "the API key was revoked",
            KeyRefusal::Expired => "the API key has expired",
        }
    }
}

/// Judge a presented key against the stored one with its id (`None`: no such id).
pub fn check_key(
    presented: &KeyText,
    stored: Option<&ApiKey>,
    now: DateTime<Utc>,
) -> Result<Principal, KeyRefusal> {
    let Some(k) = stored else {
        return Err(KeyRefusal::Unknown);
    };
    if !presented.matches(&k.hash) {
        return Err(KeyRefusal::Unknown);
    }
    if k.revoked_at.is_some() {
        return Err(KeyRefusal::Revoked);
    }
    if k.expires_at.is_some_and(|e| now >= e) {
        return Err(KeyRefusal::Expired);
    }
    Ok(Principal::Key {
        name: k.name.clone(),
        role: k.role,
    })
}

/// Whether `principal` (or nobody) may use a route that needs `need`; `own_secret`: the request
/// carried the route's own credential (checked by the route itself).
pub fn allows(need: Need, principal: Option<&Principal>) -> bool {
    match (need, principal) {
        (Need::Public, _) | (Need::OwnSecret, _) => true,
        (Need::Role(r), Some(p)) => p.role() >= r,
        (Need::Role(_), None) => false,
    }
}

/// A key name: 1–64 of letters, digits, `-`, `_`, `.`.
pub fn check_name(name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "invalid_name",
            "name",
            "a key name is 1-64 letters, digits, '-', '_' or '.'",
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, h, 0, 0).unwrap()
    }

    fn stored(key: &KeyText, role: Role) -> ApiKey {
        ApiKey {
            id: key.id.clone(),
            name: "desk".into(),
            role,
            hash: key.hash(),
            created_at: t(1),
            expires_at: Some(t(10)),
            revoked_at: None,
            last_used_at: None,
        }
    }

    #[test]
    fn keys_round_trip_and_malformed_ones_are_refused() {
        let k = KeyText::from_bytes(&[1, 2, 3, 4, 5, 6], &[7; SECRET_BYTES]);
        let text = k.reveal();
        assert!(text.starts_with("sov_010203040506_0707"), "{text}");
        assert_eq!(KeyText::parse(&text), Some(k.clone()));
        for bad in [
            "",
            "sov_",
            "sov_010203040506",
            "sov_01020304050_0707070707070707070707070707070707070707",
            "sov_010203040506_07070707070707070707070707070707070707",
            "SOV_010203040506_0707070707070707070707070707070707070707",
            "sov_01020304050G_0707070707070707070707070707070707070707",
            "Bearer sov_010203040506_0707070707070707070707070707070707070707",
        ] {
            assert_eq!(KeyText::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_key_is_checked_by_hash_revocation_and_expiry() {
        let k = KeyText::from_bytes(&[1; ID_BYTES], &[2; SECRET_BYTES]);
        let forged = KeyText::from_bytes(&[1; ID_BYTES], &[3; SECRET_BYTES]);
        let s = stored(&k, Role::Trader);
        assert_eq!(
            check_key(&k, Some(&s), t(2)),
            Ok(Principal::Key {
                name: "desk".into(),
                role: Role::Trader
            })
        );
        assert_eq!(check_key(&forged, Some(&s), t(2)), Err(KeyRefusal::Unknown));
        assert_eq!(check_key(&k, None, t(2)), Err(KeyRefusal::Unknown));
        assert_eq!(check_key(&k, Some(&s), t(10)), Err(KeyRefusal::Expired));
        let revoked = ApiKey {
            revoked_at: Some(t(3)),
            ..s
        };
        assert_eq!(
            check_key(&k, Some(&revoked), t(4)),
            Err(KeyRefusal::Revoked)
        );
    }

    #[test]
    fn roles_include_the_ones_below() {
        let key = |role| Principal::Key {
            name: "k".into(),
            role,
        };
        // (need, principal, allowed)
        let cases = [
            (Need::Public, None, true),
            (Need::OwnSecret, None, true),
            (Need::Role(Role::Viewer), None, false),
            (Need::Role(Role::Viewer), Some(key(Role::Viewer)), true),
            (Need::Role(Role::Trader), Some(key(Role::Viewer)), false),
            (Need::Role(Role::Trader), Some(key(Role::Trader)), true),
            (Need::Role(Role::Admin), Some(key(Role::Trader)), false),
            (Need::Role(Role::Admin), Some(key(Role::Admin)), true),
            (Need::Role(Role::Admin), Some(Principal::Local), true),
        ];
        for (i, (need, p, want)) in cases.into_iter().enumerate() {
            assert_eq!(allows(need, p.as_ref()), want, "case {i}");
        }
        assert_eq!(Role::parse("operator").unwrap_err().code, "invalid_role");
        assert!(
            check_name("desk-1").is_ok() && check_name("a b").is_err() && check_name("").is_err()
        );
    }

    #[test]
    fn rates_parse_from_a_count_per_unit() {
        for (text, want) in [
            ("20/s", Some((20, 1))),
            ("600/min", Some((600, 60))),
            (" 5 / h ", Some((5, 3600))),
            ("1/m", Some((1, 60))),
            ("0/s", None),
            ("-1/s", None),
            ("20", None),
            ("20/day", None),
            ("x/s", None),
            ("", None),
        ] {
            let got = Rate::parse(text, "f").ok().map(|r| (r.count, r.per_secs));
            assert_eq!(got, want, "{text:?}");
        }
        assert_eq!(
            Rate::parse("4/s", "f").unwrap().interval_nanos(),
            250_000_000
        );
        assert_eq!(Rate::parse("0/s", "f").unwrap_err().code, "invalid_rate");
    }

    #[test]
    fn every_need_falls_in_one_group() {
        let cases = [
            (Need::Public, Group::Public),
            (Need::OwnSecret, Group::Webhook),
            (Need::Role(Role::Viewer), Group::Read),
            (Need::Role(Role::Trader), Group::Trade),
            (Need::Role(Role::Admin), Group::Admin),
        ];
        for (need, group) in cases {
            assert_eq!(Group::of(need), group);
            assert_eq!(Group::parse(group.as_str()), Some(group));
            assert_eq!(Group::ALL[group.index()], group);
        }
    }
}
