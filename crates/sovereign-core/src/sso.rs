//! Single sign-on's decisions: membership tiers, the tier gates, reading roles out of a
//! WordPress token's claims, and the engine's own signed session cookie.
//!
//! Pure: no clock (expiry is judged against a `now_unix` given in), no randomness (the shell
//! draws a session's id and CSRF token), no JWT parsing (the engine verifies the WordPress token
//! and hands its claims here). The tiers are ordered `observer < activator < navigator <
//! coaching < administrator`; coaching and administrator can never be gated off, so the people
//! who run the site cannot lock themselves out.
//!
//! A session cookie is `hex(payload) "." hex(HMAC-SHA256(key, payload))`, the payload a small
//! JSON object. Only lower-case hex is accepted, so every text decodes to one byte string and any
//! change to a cookie is refused: a changed payload no longer matches its MAC, and the MAC is
//! compared in constant time. The cookie holds no secret beyond the CSRF token it must be
//! presented with; the key never leaves the engine.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Invalid;
use crate::webhook::constant_time_eq;

/// Bytes of a session id and of a session's CSRF token (both shown as lower-case hex).
pub const SESSION_ID_BYTES: usize = 16;
pub const CSRF_BYTES: usize = 16;
/// The longest session cookie value accepted (browsers keep 4096 bytes per cookie).
pub const MAX_SESSION_TEXT: usize = 4096;
/// The payload's format version.
const SESSION_VERSION: u8 = 1;
/// How many unmapped roles a refusal names, and how much of each.
const ROLES_SHOWN: usize = 8;
const ROLE_CHARS_SHOWN: usize = 64;

/// A member's tier; each includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    Observer,
    Activator,
    Navigator,
    Coaching,
    Administrator,
}

impl Tier {
    /// Every tier, lowest first.
    pub const ALL: [Tier; 5] = [
        Tier::Observer,
        Tier::Activator,
        Tier::Navigator,
        Tier::Coaching,
        Tier::Administrator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Observer => "observer",
            Tier::Activator => "activator",
            Tier::Navigator => "navigator",
            Tier::Coaching => "coaching",
            Tier::Administrator => "administrator",
        }
    }

    /// The tier of this exact (lower-case) name.
    pub fn parse(text: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// Coaching and administrator are never gated off.
    pub fn always_allowed(self) -> bool {
        self >= Tier::Coaching
    }

    fn index(self) -> usize {
        match self {
            Tier::Observer => 0,
            Tier::Activator => 1,
            Tier::Navigator => 2,
            Tier::Coaching => 3,
            Tier::Administrator => 4,
        }
    }

    /// The names, for messages: `observer, activator, …`.
    fn names() -> String {
        Tier::ALL.map(Tier::as_str).join(", ")
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which tiers may use the engine. Coaching and administrator always may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierGates {
    /// By [`Tier::index`]; the always-allowed tiers are kept `true`.
    allowed: [bool; 5],
}

impl Default for TierGates {
    /// Every tier allowed.
    fn default() -> Self {
        TierGates { allowed: [true; 5] }
    }
}

impl TierGates {
    /// Whether members of `tier` may use the engine.
    pub fn allows(&self, tier: Tier) -> bool {
        tier.always_allowed() || self.allowed[tier.index()]
    }

    /// The tiers gated off, lowest first.
    pub fn blocked(&self) -> Vec<Tier> {
        Tier::ALL.into_iter().filter(|t| !self.allows(*t)).collect()
    }

    /// The gates after a `{"allowed_tiers": {"observer": false, …}}` body. Tiers the body does
    /// not name keep their value here; nothing changes unless the whole body is valid.
    pub fn parse_body(&self, body: &Value) -> Result<TierGates, Invalid> {
        let Value::Object(top) = body else {
            return Err(Invalid::new(
                "invalid_body",
                "allowed_tiers",
                "the body must be an object: {\"allowed_tiers\": {\"observer\": true, …}}",
            ));
        };
        if let Some(other) = top.keys().find(|k| k.as_str() != "allowed_tiers") {
            return Err(Invalid::new(
                "unknown_field",
                other.clone(),
                format!("unknown field {other:?}: the body holds only allowed_tiers"),
            ));
        }
        let Some(Value::Object(tiers)) = top.get("allowed_tiers") else {
            return Err(Invalid::new(
                "invalid_body",
                "allowed_tiers",
                "allowed_tiers must be an object of tier names to true or false",
            ));
        };
        let mut next = *self;
        for (name, value) in tiers {
            let field = format!("allowed_tiers.{name}");
            let Some(tier) = Tier::parse(name) else {
                return Err(Invalid::new(
                    "unknown_tier",
                    field,
                    format!("{name:?} is not a tier: the tiers are {}", Tier::names()),
                ));
            };
            let Value::Bool(allowed) = value else {
                return Err(Invalid::new(
                    "invalid_type",
                    field,
                    format!("allowed_tiers.{name} must be true or false"),
                ));
            };
            if tier.always_allowed() && !allowed {
                return Err(Invalid::new(
                    "tier_always_allowed",
                    field,
                    format!("{tier} is always allowed and cannot be gated off"),
                ));
            }
            next.allowed[tier.index()] = *allowed || tier.always_allowed();
        }
        Ok(next)
    }

    /// The tiers whose value differs in `next`, with their new value, lowest first.
    pub fn changes(&self, next: &TierGates) -> Vec<(Tier, bool)> {
        Tier::ALL
            .into_iter()
            .filter(|t| self.allows(*t) != next.allows(*t))
            .map(|t| (t, next.allows(t)))
            .collect()
    }

    /// `{"allowed_tiers": {…every tier…}}`.
    pub fn to_json(self) -> Value {
        let tiers: Map<String, Value> = Tier::ALL
            .into_iter()
            .map(|t| (t.as_str().to_string(), Value::Bool(self.allows(t))))
            .collect();
        let mut top = Map::new();
        top.insert("allowed_tiers".into(), Value::Object(tiers));
        Value::Object(top)
    }

    /// The storage text: the compact JSON of [`TierGates::to_json`].
    pub fn to_text(self) -> String {
        self.to_json().to_string()
    }

    /// Read a storage text back (what [`TierGates::to_text`] wrote). Tiers it does not name are
    /// allowed.
    pub fn from_text(text: &str) -> Result<TierGates, Invalid> {
        let body: Value = serde_json::from_str(text).map_err(|e| {
            Invalid::new(
                "invalid_body",
                "allowed_tiers",
                format!("the stored tier gates are not JSON: {e}"),
            )
        })?;
        TierGates::default().parse_body(&body)
    }
}

/// The value at a dotted path (`data.user.roles`) in a token's claims; a segment of digits also
/// indexes an array. An empty path or segment finds nothing.
pub fn claim_at<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return None;
    }
    path.split('.').try_fold(claims, |at, segment| {
        if segment.is_empty() {
            return None;
        }
        match at {
            Value::Object(map) => map.get(segment),
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        }
    })
}

/// The role names a roles claim holds: a string, an array of strings, or an object whose
/// string values are role names (`{"0": "subscriber"}`) or whose keys are, when their value is
/// `true` (`{"administrator": true}`, WordPress's capabilities shape).
pub fn role_names(roles: &Value) -> Vec<String> {
    let mut names = Vec::new();
    match roles {
        Value::String(s) => names.push(s.clone()),
        Value::Array(items) => {
            names.extend(items.iter().filter_map(|v| v.as_str()).map(String::from))
        }
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::String(s) => names.push(s.clone()),
                    Value::Bool(true) => names.push(key.clone()),
                    _ => {}
                }
            }
        }
        _ => {}
    }
    names
        .into_iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

/// The WordPress roles a site has out of the box: subscriber → observer; activator, navigator,
/// coaching, administrator → the tier of their name.
pub fn default_tiers() -> BTreeMap<String, Tier> {
    [
        ("subscriber", Tier::Observer),
        ("activator", Tier::Activator),
        ("navigator", Tier::Navigator),
        ("coaching", Tier::Coaching),
        ("administrator", Tier::Administrator),
    ]
    .into_iter()
    .map(|(role, tier)| (role.to_string(), tier))
    .collect()
}

/// The highest tier any of the claim's roles maps onto (role names compare without regard to
/// case). No mapped role: `unknown_role`, naming the roles seen (never anything else of the
/// token).
pub fn tier_of(roles: &Value, map: &BTreeMap<String, Tier>) -> Result<Tier, Invalid> {
    let names = role_names(roles);
    let best = names
        .iter()
        .filter_map(|name| {
            let name = name.to_lowercase();
            map.iter()
                .find(|(role, _)| role.to_lowercase() == name)
                .map(|(_, tier)| *tier)
        })
        .max();
    best.ok_or_else(|| {
        let message = if names.is_empty() {
            "the token's roles claim names no role".to_string()
        } else {
            let shown: Vec<String> = names
                .iter()
                .take(ROLES_SHOWN)
                .map(|n| format!("{:?}", n.chars().take(ROLE_CHARS_SHOWN).collect::<String>()))
                .collect();
            let more = names.len().saturating_sub(ROLES_SHOWN);
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!(
                "no role of the token maps to a tier (roles: {}{tail})",
                shown.join(", ")
            )
        };
        Invalid::new("unknown_role", "roles", message)
    })
}

/// A signed-in member, as the engine's session cookie carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// Lower-case hex of [`SESSION_ID_BYTES`] random bytes.
    pub id: String,
    /// Who signed in (the token's subject).
    pub subject: String,
    pub tier: Tier,
    /// Unix seconds; the session is refused from this second on.
    pub expires_at: i64,
    /// Lower-case hex of [`CSRF_BYTES`] random bytes; every mutating request presents it.
    pub csrf: String,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("subject", &self.subject)
            .field("tier", &self.tier)
            .field("expires_at", &self.expires_at)
            .field("csrf", &"<redacted>")
            .finish()
    }
}

/// The signed payload's shape.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    v: u8,
    id: String,
    sub: String,
    tier: String,
    exp: i64,
    csrf: String,
}

impl Session {
    /// A session of these random bytes.
    pub fn new(
        id: &[u8; SESSION_ID_BYTES],
        csrf: &[u8; CSRF_BYTES],
        subject: &str,
        tier: Tier,
        expires_at: i64,
    ) -> Session {
        Session {
            id: hex::encode(id),
            subject: subject.to_string(),
            tier,
            expires_at,
            csrf: hex::encode(csrf),
        }
    }

    /// The cookie value: `hex(payload).hex(HMAC-SHA256(key, payload))`.
    pub fn encode(&self, key: &[u8]) -> String {
        let payload = Payload {
            v: SESSION_VERSION,
            id: self.id.clone(),
            sub: self.subject.clone(),
            tier: self.tier.as_str().to_string(),
            exp: self.expires_at,
            csrf: self.csrf.clone(),
        };
        // A struct of strings and integers always serializes.
        let bytes = serde_json::to_vec(&payload).unwrap_or_default();
        format!("{}.{}", hex::encode(&bytes), hex::encode(mac(key, &bytes)))
    }

    /// Read a cookie value signed with `key`, refusing it from `expires_at` on.
    pub fn decode(text: &str, key: &[u8], now_unix: i64) -> Result<Session, SessionRefusal> {
        if text.len() > MAX_SESSION_TEXT {
            return Err(SessionRefusal::Malformed);
        }
        let (payload_hex, mac_hex) = text.split_once('.').ok_or(SessionRefusal::Malformed)?;
        if !lower_hex(payload_hex) || !lower_hex(mac_hex) {
            return Err(SessionRefusal::Malformed);
        }
        let payload = hex::decode(payload_hex).map_err(|_| SessionRefusal::Malformed)?;
        let sig = hex::decode(mac_hex).map_err(|_| SessionRefusal::Malformed)?;
        let mut check = hmac::Hmac::<sha2::Sha256>::new_from_slice(key)
            .map_err(|_| SessionRefusal::BadSignature)?;
        check.update(&payload);
        check
            .verify_slice(&sig)
            .map_err(|_| SessionRefusal::BadSignature)?;
        let p: Payload = serde_json::from_slice(&payload).map_err(|_| SessionRefusal::Malformed)?;
        if p.v != SESSION_VERSION {
            return Err(SessionRefusal::Malformed);
        }
        let tier = Tier::parse(&p.tier).ok_or(SessionRefusal::Malformed)?;
        if now_unix >= p.exp {
            return Err(SessionRefusal::Expired);
        }
        Ok(Session {
            id: p.id,
            subject: p.sub,
            tier,
            expires_at: p.exp,
            csrf: p.csrf,
        })
    }
}

/// HMAC-SHA256 of `bytes` under `key`.
fn mac(key: &[u8], bytes: &[u8]) -> Vec<u8> {
    match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(bytes);
            m.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length; an empty MAC would never verify.
        Err(_) => Vec::new(),
    }
}

/// Non-empty, even-length, lower-case hex: the one spelling of its bytes.
fn lower_hex(text: &str) -> bool {
    !text.is_empty()
        && text.len().is_multiple_of(2)
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Why a session cookie was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRefusal {
    /// Not a cookie this engine writes.
    Malformed,
    /// Its MAC does not match (changed, or signed with another key).
    BadSignature,
    /// Past its expiry.
    Expired,
}

impl SessionRefusal {
    pub fn code(self) -> &'static str {
        match self {
            SessionRefusal::Malformed => "session_malformed",
            SessionRefusal::BadSignature => "session_bad_signature",
            SessionRefusal::Expired => "session_expired",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            SessionRefusal::Malformed => "the session cookie is not one this engine wrote",
            SessionRefusal::BadSignature => {
                "the session cookie's signature does not match (changed, or from another engine)"
            }
            SessionRefusal::Expired => "the session has expired: sign in again",
        }
    }
}

impl fmt::Display for SessionRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// Whether `presented` is the session's CSRF token (constant time; nothing presented: no).
pub fn csrf_ok(session: &Session, presented: Option<&str>) -> bool {
    match presented {
        Some(p) => {
            !session.csrf.is_empty()
                && constant_time_eq(p.trim().as_bytes(), session.csrf.as_bytes())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const KEY: &[u8] = b"engine session key, 32 bytes!!!!";

    fn default_map() -> BTreeMap<String, Tier> {
        default_tiers()
    }

    fn session() -> Session {
        Session::new(
            &[7; SESSION_ID_BYTES],
            &[9; CSRF_BYTES],
            "wp:42",
            Tier::Navigator,
            1_000,
        )
    }

    #[test]
    fn tiers_parse_by_exact_name_and_are_ordered() {
        let cases = [
            ("observer", Some(Tier::Observer)),
            ("activator", Some(Tier::Activator)),
            ("navigator", Some(Tier::Navigator)),
            ("coaching", Some(Tier::Coaching)),
            ("administrator", Some(Tier::Administrator)),
            ("Observer", None),
            ("admin", None),
            ("", None),
            (" observer", None),
        ];
        for (text, want) in cases {
            assert_eq!(Tier::parse(text), want, "{text:?}");
        }
        for t in Tier::ALL {
            assert_eq!(Tier::parse(t.as_str()), Some(t));
            assert_eq!(t.to_string(), t.as_str());
        }
        assert!(Tier::ALL.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            Tier::ALL.map(Tier::always_allowed),
            [false, false, false, true, true]
        );
    }

    #[test]
    fn gates_default_to_all_allowed_and_round_trip_as_text() {
        let g = TierGates::default();
        assert!(Tier::ALL.into_iter().all(|t| g.allows(t)));
        assert!(g.blocked().is_empty());
        assert_eq!(
            g.to_json(),
            json!({"allowed_tiers": {"observer": true, "activator": true, "navigator": true,
                   "coaching": true, "administrator": true}})
        );
        let closed = g
            .parse_body(&json!({"allowed_tiers": {"observer": false, "navigator": false}}))
            .unwrap();
        assert_eq!(closed.blocked(), vec![Tier::Observer, Tier::Navigator]);
        assert_eq!(TierGates::from_text(&closed.to_text()).unwrap(), closed);
        assert_eq!(
            g.changes(&closed),
            vec![(Tier::Observer, false), (Tier::Navigator, false)]
        );
        assert!(closed.changes(&closed).is_empty());
    }

    #[test]
    fn a_partial_body_keeps_the_tiers_it_does_not_name() {
        let start = TierGates::default()
            .parse_body(&json!({"allowed_tiers": {"observer": false}}))
            .unwrap();
        let next = start
            .parse_body(&json!({"allowed_tiers": {"activator": false}}))
            .unwrap();
        assert_eq!(next.blocked(), vec![Tier::Observer, Tier::Activator]);
        let reopened = next
            .parse_body(&json!({"allowed_tiers": {"observer": true, "coaching": true}}))
            .unwrap();
        assert_eq!(reopened.blocked(), vec![Tier::Activator]);
        assert_eq!(
            next.parse_body(&json!({"allowed_tiers": {}})).unwrap(),
            next
        );
    }

    #[test]
    fn bad_gate_bodies_are_refused_with_their_code_and_field() {
        // (body, code, field)
        let cases = [
            (json!([]), "invalid_body", "allowed_tiers"),
            (json!("observer"), "invalid_body", "allowed_tiers"),
            (json!({}), "invalid_body", "allowed_tiers"),
            (
                json!({"allowed_tiers": null}),
                "invalid_body",
                "allowed_tiers",
            ),
            (
                json!({"allowed_tiers": ["observer"]}),
                "invalid_body",
                "allowed_tiers",
            ),
            (
                json!({"allowed_tiers": {}, "extra": 1}),
                "unknown_field",
                "extra",
            ),
            (
                json!({"allowed_tiers": {"gold": true}}),
                "unknown_tier",
                "allowed_tiers.gold",
            ),
            (
                json!({"allowed_tiers": {"Observer": true}}),
                "unknown_tier",
                "allowed_tiers.Observer",
            ),
            (
                json!({"allowed_tiers": {"observer": "false"}}),
                "invalid_type",
                "allowed_tiers.observer",
            ),
            (
                json!({"allowed_tiers": {"observer": 0}}),
                "invalid_type",
                "allowed_tiers.observer",
            ),
            (
                json!({"allowed_tiers": {"observer": null}}),
                "invalid_type",
                "allowed_tiers.observer",
            ),
            (
                json!({"allowed_tiers": {"coaching": false}}),
                "tier_always_allowed",
                "allowed_tiers.coaching",
            ),
            (
                json!({"allowed_tiers": {"administrator": false}}),
                "tier_always_allowed",
                "allowed_tiers.administrator",
            ),
        ];
        let start = TierGates::default();
        for (body, code, field) in cases {
            let err = start.parse_body(&body).unwrap_err();
            assert_eq!(
                (err.code, err.field.as_deref()),
                (code, Some(field)),
                "{body}"
            );
        }
        // A refused body changes nothing: the caller keeps `start`.
        assert!(start.blocked().is_empty());
        assert_eq!(
            TierGates::from_text("not json").unwrap_err().code,
            "invalid_body"
        );
    }

    #[test]
    fn claims_are_found_by_dotted_path() {
        let claims = json!({
            "sub": "7",
            "data": {"user": {"id": 7, "roles": ["subscriber"], "list": [{"x": 1}]}},
        });
        let cases = [
            ("sub", Some(json!("7"))),
            ("data.user.id", Some(json!(7))),
            ("data.user.roles", Some(json!(["subscriber"]))),
            ("data.user.roles.0", Some(json!("subscriber"))),
            ("data.user.list.0.x", Some(json!(1))),
            ("data.user.roles.1", None),
            ("data.user.missing", None),
            ("data.user.id.deeper", None),
            ("data..user", None),
            ("data.user.", None),
            ("", None),
        ];
        for (path, want) in cases {
            assert_eq!(claim_at(&claims, path).cloned(), want, "{path:?}");
        }
    }

    #[test]
    fn the_highest_mapped_role_gives_the_tier() {
        let map = default_map();
        let cases = [
            (json!("subscriber"), Tier::Observer),
            (json!("Administrator"), Tier::Administrator),
            (json!(["subscriber", "navigator"]), Tier::Navigator),
            (json!(["navigator", "subscriber"]), Tier::Navigator),
            (json!(["customer", "activator", 5]), Tier::Activator),
            (json!({"0": "subscriber", "1": "coaching"}), Tier::Coaching),
            (
                json!({"administrator": true, "subscriber": false}),
                Tier::Administrator,
            ),
            (json!([" NAVIGATOR "]), Tier::Navigator),
        ];
        for (roles, want) in cases {
            assert_eq!(tier_of(&roles, &map).unwrap(), want, "{roles}");
        }
    }

    #[test]
    fn no_mapped_role_is_refused_naming_the_roles() {
        let map = default_map();
        let err = tier_of(&json!(["customer", "editor"]), &map).unwrap_err();
        assert_eq!(
            (err.code, err.field.as_deref()),
            ("unknown_role", Some("roles"))
        );
        assert!(
            err.message.contains("\"customer\", \"editor\""),
            "{}",
            err.message
        );
        for empty in [
            json!([]),
            json!(""),
            json!(7),
            json!(null),
            json!({"a": false}),
        ] {
            let err = tier_of(&empty, &map).unwrap_err();
            assert_eq!(err.code, "unknown_role", "{empty}");
            assert!(err.message.contains("names no role"), "{}", err.message);
        }
        let many: Vec<String> = (0..20).map(|i| format!("r{i}")).collect();
        let err = tier_of(&json!(many), &map).unwrap_err();
        assert!(err.message.contains("and 12 more"), "{}", err.message);
        // A map with upper-case keys still matches.
        let upper: BTreeMap<String, Tier> = [("Customer".to_string(), Tier::Activator)].into();
        assert_eq!(
            tier_of(&json!("customer"), &upper).unwrap(),
            Tier::Activator
        );
    }

    #[test]
    fn a_session_round_trips_and_hides_its_csrf_token() {
        let s = session();
        assert_eq!(s.id.len(), 2 * SESSION_ID_BYTES);
        let text = s.encode(KEY);
        assert!(
            text.bytes().all(|b| b == b'.' || b.is_ascii_hexdigit()),
            "{text}"
        );
        assert_eq!(Session::decode(&text, KEY, 999).unwrap(), s);
        let shown = format!("{s:?}");
        assert!(
            !shown.contains(&s.csrf) && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn changed_foreign_expired_and_malformed_sessions_are_refused() {
        let s = session();
        let text = s.encode(KEY);
        let (payload, sig) = text.split_once('.').unwrap();
        let flip = |h: &str, at: usize| {
            let mut b = h.as_bytes().to_vec();
            b[at] = if b[at] == b'0' { b'1' } else { b'0' };
            String::from_utf8(b).unwrap()
        };
        let other = Session {
            tier: Tier::Administrator,
            ..s.clone()
        }
        .encode(KEY);
        let (other_payload, _) = other.split_once('.').unwrap();
        let cases = [
            (
                format!("{}.{sig}", flip(payload, 3)),
                SessionRefusal::BadSignature,
            ),
            (
                format!("{payload}.{}", flip(sig, 10)),
                SessionRefusal::BadSignature,
            ),
            (
                format!("{other_payload}.{sig}"),
                SessionRefusal::BadSignature,
            ),
            (s.encode(b"another key"), SessionRefusal::BadSignature),
            (text.to_uppercase(), SessionRefusal::Malformed),
            (
                format!("{payload}.{}", &sig[..62]),
                SessionRefusal::BadSignature,
            ),
            (
                format!("{payload}.{}", &sig[..61]),
                SessionRefusal::Malformed,
            ),
            (payload.to_string(), SessionRefusal::Malformed),
            (format!("{payload}.{sig}.00"), SessionRefusal::Malformed),
            (format!(".{sig}"), SessionRefusal::Malformed),
            (String::new(), SessionRefusal::Malformed),
            ("zz.zz".into(), SessionRefusal::Malformed),
            ("a".repeat(MAX_SESSION_TEXT + 1), SessionRefusal::Malformed),
        ];
        for (i, (bad, want)) in cases.into_iter().enumerate() {
            assert_eq!(Session::decode(&bad, KEY, 999), Err(want), "case {i}");
        }
        assert_eq!(
            Session::decode(&text, KEY, 1_000),
            Err(SessionRefusal::Expired)
        );
        assert_eq!(
            Session::decode(&text, KEY, 5_000),
            Err(SessionRefusal::Expired)
        );
        // Signed but not a session: the signature holds, the payload does not.
        let junk = b"{\"v\":1}";
        let forged = format!("{}.{}", hex::encode(junk), hex::encode(mac(KEY, junk)));
        assert_eq!(
            Session::decode(&forged, KEY, 0),
            Err(SessionRefusal::Malformed)
        );
        for r in [
            SessionRefusal::Malformed,
            SessionRefusal::BadSignature,
            SessionRefusal::Expired,
        ] {
            assert!(r.code().starts_with("session_") && !r.message().is_empty());
        }
    }

    #[test]
    fn the_csrf_token_must_be_presented_exactly() {
        let s = session();
        let token = s.csrf.clone();
        assert!(csrf_ok(&s, Some(&token)));
        assert!(csrf_ok(&s, Some(&format!(" {token} "))));
        assert!(!csrf_ok(&s, None));
        assert!(!csrf_ok(&s, Some("")));
        assert!(!csrf_ok(&s, Some(&token[..31])));
        assert!(!csrf_ok(&s, Some(&token.to_uppercase().replace('9', "8"))));
        let blank = Session {
            csrf: String::new(),
            ..s
        };
        assert!(!csrf_ok(&blank, Some("")));
    }

    fn any_session() -> impl Strategy<Value = Session> {
        (
            any::<[u8; SESSION_ID_BYTES]>(),
            any::<[u8; CSRF_BYTES]>(),
            any::<String>(),
            0usize..Tier::ALL.len(),
            1i64..=i64::MAX,
        )
            .prop_map(|(id, csrf, subject, t, exp)| {
                Session::new(&id, &csrf, &subject, Tier::ALL[t], exp)
            })
    }

    proptest! {
        #[test]
        fn any_session_round_trips(s in any_session(), key in any::<Vec<u8>>()) {
            let text = s.encode(&key);
            prop_assert_eq!(Session::decode(&text, &key, s.expires_at - 1), Ok(s));
        }

        #[test]
        fn any_single_character_change_is_refused(
            s in any_session(),
            at in any::<usize>(),
            c in any::<char>(),
        ) {
            let mut chars: Vec<char> = s.encode(KEY).chars().collect();
            let i = at % chars.len();
            prop_assume!(chars[i] != c);
            chars[i] = c;
            let changed: String = chars.into_iter().collect();
            prop_assert!(Session::decode(&changed, KEY, s.expires_at - 1).is_err());
        }
    }
}
