//! Single sign-on: verifying a WordPress site's HMAC-signed JWT and reading who it names and
//! which tier they are.
//!
//! The header's `alg` must be exactly the configured algorithm, read from the header itself
//! before anything else, so `none`, another HMAC size and public-key algorithms (algorithm
//! confusion) are all `wrong_algorithm`. jsonwebtoken checks the signature (constant time); the
//! times are judged here against the `now_unix` the caller passes, with the configured leeway,
//! and `exp` is required. The roles and tier decisions are `sovereign_core::sso`'s. A refusal's
//! code is stable and its message never repeats the token. This file does not know sessions,
//! cookies or HTTP.

use std::collections::HashSet;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sovereign_core::access::Role;
use sovereign_core::error::Invalid;
use sovereign_core::sso::{claim_at, tier_of, Tier};

use super::settings::{HmacAlg, SecretSource, SsoSettings};

/// The longest token read (WordPress tokens are a few hundred bytes).
pub const MAX_TOKEN_LEN: usize = 8192;
/// The longest subject accepted.
pub const MAX_SUBJECT_LEN: usize = 256;

/// jsonwebtoken's name for a configured algorithm.
pub fn algorithm(alg: HmacAlg) -> Algorithm {
    match alg {
        HmacAlg::Hs256 => Algorithm::HS256,
        HmacAlg::Hs384 => Algorithm::HS384,
        HmacAlg::Hs512 => Algorithm::HS512,
    }
}

/// Who a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The `sub` claim, else `data.user.id`, else `data.user.login`.
    pub subject: String,
    /// The highest tier the token's roles map onto.
    pub tier: Tier,
    /// The token's `exp` (unix seconds).
    pub token_expires_at: i64,
}

/// Why a token was refused. No variant holds the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRefusal {
    /// Not a JWT (three base64url parts, a JSON header and claims), too long, or a claim of the
    /// wrong type.
    Malformed,
    /// The header's `alg` is not the configured one (`presented` is shown cleaned and cut).
    WrongAlgorithm {
        expected: &'static str,
        presented: String,
    },
    /// The signature does not match the secret.
    BadSignature,
    /// `exp` is past, beyond the leeway.
    Expired,
    /// `nbf` is ahead, beyond the leeway.
    NotYetValid,
    /// No `exp`: a token that never expires is not accepted.
    NoExpiry,
    /// Nothing at the configured roles path.
    NoRolesClaim { path: String },
    /// No role of the token maps to a tier (the core's message, naming the roles seen).
    UnknownRole(String),
    /// No `sub`, `data.user.id` or `data.user.login`.
    NoSubject,
}

impl TokenRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            TokenRefusal::Malformed => "malformed",
            TokenRefusal::WrongAlgorithm { .. } => "wrong_algorithm",
            TokenRefusal::BadSignature => "bad_signature",
            TokenRefusal::Expired => "expired",
            TokenRefusal::NotYetValid => "not_yet_valid",
            TokenRefusal::NoExpiry => "no_expiry",
            TokenRefusal::NoRolesClaim { .. } => "no_roles_claim",
            TokenRefusal::UnknownRole(_) => "unknown_role",
            TokenRefusal::NoSubject => "no_subject",
        }
    }

    pub fn message(&self) -> String {
        match self {
            TokenRefusal::Malformed => "the sign-on token is not a well-formed JWT".into(),
            TokenRefusal::WrongAlgorithm {
                expected,
                presented,
            } => format!(
                "the sign-on token is signed with {presented:?}; only {expected} is accepted"
            ),
            TokenRefusal::BadSignature => {
                "the sign-on token's signature does not match the site's secret".into()
            }
            TokenRefusal::Expired => "the sign-on token has expired: sign in again".into(),
            TokenRefusal::NotYetValid => {
                "the sign-on token is not valid yet (check the clocks)".into()
            }
            TokenRefusal::NoExpiry => "the sign-on token has no expiry (exp)".into(),
            TokenRefusal::NoRolesClaim { path } => {
                format!("the sign-on token has no roles at {path}")
            }
            TokenRefusal::UnknownRole(message) => message.clone(),
            TokenRefusal::NoSubject => {
                "the sign-on token names no user (sub, data.user.id or data.user.login)".into()
            }
        }
    }
}

impl fmt::Display for TokenRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for TokenRefusal {}

/// The SSO settings with their secret resolved, ready to verify tokens. Cheap to share behind an
/// `Arc`; the secret is never shown in `Debug`.
#[derive(Clone)]
pub struct Sso {
    settings: SsoSettings,
    key: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for Sso {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sso")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Sso {
    /// Verify with `secret` (the inline one, or the value read from Truth).
    pub fn new(settings: SsoSettings, secret: &[u8]) -> Result<Sso, Invalid> {
        if secret.is_empty() {
            let field = match settings.secret {
                SecretSource::Inline(_) => "access.sso.secret",
                SecretSource::Truth(_) => "access.sso.secret_from",
            };
            return Err(Invalid::new(
                "empty_secret",
                field,
                "the SSO secret is empty: anyone could sign a token",
            ));
        }
        let mut validation = Validation::new(algorithm(settings.algorithm));
        // The times are judged in `verify`, against the caller's clock and leeway; there is no
        // audience to hold `aud` against.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        validation.leeway = 0;
        Ok(Sso {
            key: DecodingKey::from_secret(secret),
            validation,
            settings,
        })
    }

    /// With the secret written in the config; a Truth reference must be resolved first
    /// ([`Sso::new`]).
    pub fn from_inline(settings: SsoSettings) -> Result<Sso, Invalid> {
        match &settings.secret {
            SecretSource::Inline(secret) => {
                let secret = secret.clone();
                Sso::new(settings, &secret)
            }
            SecretSource::Truth(reference) => Err(Invalid::new(
                "unresolved_secret",
                "access.sso.secret_from",
                format!("the SSO secret {reference:?} must be read from Truth first"),
            )),
        }
    }

    pub fn settings(&self) -> &SsoSettings {
        &self.settings
    }

    /// The API role a tier's members act with.
    pub fn role_for(&self, tier: Tier) -> Role {
        self.settings.role_for(tier)
    }

    /// Check a token at `now_unix` (unix seconds).
    pub fn verify(&self, token: &str, now_unix: i64) -> Result<Verified, TokenRefusal> {
        let token = token.trim();
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(TokenRefusal::Malformed);
        }
        let expected = self.settings.algorithm.as_str();
        let presented = header_alg(token)?;
        if presented.as_deref() != Some(expected) {
            return Err(TokenRefusal::WrongAlgorithm {
                expected,
                presented: shown_alg(presented.as_deref()),
            });
        }
        let data = jsonwebtoken::decode::<Value>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::InvalidSignature => TokenRefusal::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
                    TokenRefusal::WrongAlgorithm {
                        expected,
                        presented: shown_alg(presented.as_deref()),
                    }
                }
                ErrorKind::ExpiredSignature => TokenRefusal::Expired,
                ErrorKind::ImmatureSignature => TokenRefusal::NotYetValid,
                _ => TokenRefusal::Malformed,
            },
        )?;
        let claims = data.claims;
        if !claims.is_object() {
            return Err(TokenRefusal::Malformed);
        }
        let leeway = i64::try_from(self.settings.leeway_secs).unwrap_or(i64::MAX);
        let exp = match claims.get("exp") {
            None | Some(Value::Null) => return Err(TokenRefusal::NoExpiry),
            Some(v) => seconds(v)?,
        };
        if now_unix >= exp.saturating_add(leeway) {
            return Err(TokenRefusal::Expired);
        }
        if let Some(v) = claims.get("nbf").filter(|v| !v.is_null()) {
            if now_unix.saturating_add(leeway) < seconds(v)? {
                return Err(TokenRefusal::NotYetValid);
            }
        }
        let roles = claim_at(&claims, &self.settings.roles_claim)
            .filter(|v| !v.is_null())
            .ok_or_else(|| TokenRefusal::NoRolesClaim {
                path: self.settings.roles_claim.clone(),
            })?;
        let tier = tier_of(roles, &self.settings.tiers)
            .map_err(|e| TokenRefusal::UnknownRole(e.message))?;
        let subject = subject_of(&claims)?;
        Ok(Verified {
            subject,
            tier,
            token_expires_at: exp,
        })
    }
}

/// Check `token` with `sso` at `now_unix`.
pub fn verify_token(token: &str, sso: &Sso, now_unix: i64) -> Result<Verified, TokenRefusal> {
    sso.verify(token, now_unix)
}

/// The header's `alg` as written (`None`: absent or not a string). A token that is not three
/// parts with a base64url JSON object first is malformed.
fn header_alg(token: &str) -> Result<Option<String>, TokenRefusal> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenRefusal::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenRefusal::Malformed)?;
    let header: Value = serde_json::from_slice(&bytes).map_err(|_| TokenRefusal::Malformed)?;
    let Value::Object(fields) = header else {
        return Err(TokenRefusal::Malformed);
    };
    Ok(match fields.get("alg") {
        Some(Value::String(alg)) => Some(alg.clone()),
        _ => None,
    })
}

/// A presented algorithm name fit for a message: letters, digits, `-`, `_`, at most 16.
fn shown_alg(presented: Option<&str>) -> String {
    let cleaned: String = presented
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .take(16)
        .collect();
    if cleaned.is_empty() {
        "no algorithm".into()
    } else {
        cleaned
    }
}

/// A time claim: whole unix seconds.
fn seconds(v: &Value) -> Result<i64, TokenRefusal> {
    v.as_i64().ok_or(TokenRefusal::Malformed)
}

/// `sub`, else `data.user.id`, else `data.user.login`: a non-empty string or a number.
fn subject_of(claims: &Value) -> Result<String, TokenRefusal> {
    let text = |v: &Value| match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let subject = claims
        .get("sub")
        .and_then(text)
        .or_else(|| claim_at(claims, "data.user.id").and_then(text))
        .or_else(|| claim_at(claims, "data.user.login").and_then(text))
        .ok_or(TokenRefusal::NoSubject)?;
    if subject.len() > MAX_SUBJECT_LEN || subject.chars().any(char::is_control) {
        return Err(TokenRefusal::Malformed);
    }
    Ok(subject)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;
    use std::collections::BTreeMap;

    const SECRET: &[u8] = b"wordpress-jwt-secret-of-the-site";
    const NOW: i64 = 1_800_000_000;

    fn settings() -> SsoSettings {
        SsoSettings::new(SecretSource::Inline(SECRET.to_vec()))
    }

    fn sso() -> Sso {
        Sso::from_inline(settings()).unwrap()
    }

    fn mint(alg: Algorithm, secret: &[u8], claims: &Value) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A token with this header, signed HMAC-SHA256 with the site's secret whatever it says.
    fn hand_signed(header: &Value, claims: &Value) -> String {
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET);
        let sig = ring::hmac::sign(&key, message.as_bytes());
        format!("{message}.{}", b64(sig.as_ref()))
    }

    /// What WordPress's JWT plugin issues: the user under `data.user`.
    fn wp(roles: Value) -> Value {
        json!({
            "iss": "https://site.example",
            "iat": NOW - 60,
            "nbf": NOW - 60,
            "exp": NOW + 3600,
            "data": {"user": {"id": "42", "roles": roles}},
        })
    }

    fn with(mut claims: Value, key: &str, value: Value) -> Value {
        claims[key] = value;
        claims
    }

    fn without(mut claims: Value, key: &str) -> Value {
        if let Value::Object(m) = &mut claims {
            m.remove(key);
        }
        claims
    }

    fn hs256(claims: &Value) -> String {
        mint(Algorithm::HS256, SECRET, claims)
    }

    fn check(token: &str) -> Result<(String, Tier), &'static str> {
        sso()
            .verify(token, NOW)
            .map(|v| (v.subject, v.tier))
            .map_err(|e| e.code())
    }

    #[test]
    fn tokens_are_judged_by_algorithm_signature_and_time() {
        let claims = wp(json!(["subscriber"]));
        let payload = b64(claims.to_string().as_bytes());
        let good = hs256(&claims);
        let (head, rest) = good.split_once('.').unwrap();
        let sig = rest.split_once('.').unwrap().1;
        let tampered_claims = wp(json!(["administrator"]));
        let tampered = format!(
            "{head}.{}.{sig}",
            b64(tampered_claims.to_string().as_bytes())
        );
        type Outcome = Result<(String, Tier), &'static str>;
        let ok: Outcome = Ok(("42".to_string(), Tier::Observer));
        // (what, token, result)
        let cases: Vec<(&str, String, Outcome)> = vec![
            ("good", good.clone(), ok.clone()),
            ("padded with spaces", format!("  {good}\n"), ok.clone()),
            (
                "wrong secret",
                mint(Algorithm::HS256, b"another-secret", &claims),
                Err("bad_signature"),
            ),
            ("changed claims", tampered, Err("bad_signature")),
            (
                "no signature",
                format!("{head}.{payload}."),
                Err("bad_signature"),
            ),
            (
                "HS512",
                mint(Algorithm::HS512, SECRET, &claims),
                Err("wrong_algorithm"),
            ),
            (
                "HS384",
                mint(Algorithm::HS384, SECRET, &claims),
                Err("wrong_algorithm"),
            ),
            (
                "alg none",
                format!("eyJhbGciOiJub25lIn0.{payload}."),
                Err("wrong_algorithm"),
            ),
            (
                "alg none, signed",
                hand_signed(&json!({"alg": "none", "typ": "JWT"}), &claims),
                Err("wrong_algorithm"),
            ),
            (
                "alg in lower case",
                hand_signed(&json!({"alg": "hs256"}), &claims),
                Err("wrong_algorithm"),
            ),
            (
                "RS256 with the secret",
                hand_signed(&json!({"alg": "RS256"}), &claims),
                Err("wrong_algorithm"),
            ),
            (
                "no alg",
                hand_signed(&json!({"typ": "JWT"}), &claims),
                Err("wrong_algorithm"),
            ),
            (
                "alg not a string",
                hand_signed(&json!({"alg": 256}), &claims),
                Err("wrong_algorithm"),
            ),
            (
                "HS256 by hand",
                hand_signed(&json!({"alg": "HS256"}), &claims),
                ok.clone(),
            ),
            ("empty", String::new(), Err("malformed")),
            ("one part", "abc".into(), Err("malformed")),
            ("two parts", format!("{head}.{payload}"), Err("malformed")),
            ("four parts", format!("{good}.x"), Err("malformed")),
            (
                "header not base64",
                format!("!!.{payload}.{sig}"),
                Err("malformed"),
            ),
            (
                "header not JSON",
                format!("{}.{payload}.{sig}", b64(b"nope")),
                Err("malformed"),
            ),
            (
                "header an array",
                format!("{}.{payload}.{sig}", b64(b"[1]")),
                Err("malformed"),
            ),
            (
                "too long",
                format!("{good}{}", "A".repeat(MAX_TOKEN_LEN)),
                Err("malformed"),
            ),
            (
                "claims not JSON",
                hand_signed(&json!({"alg": "HS256"}), &json!("x")),
                Err("malformed"),
            ),
            (
                "expired",
                hs256(&with(claims.clone(), "exp", json!(NOW - 31))),
                Err("expired"),
            ),
            (
                "expired at the leeway",
                hs256(&with(claims.clone(), "exp", json!(NOW - 30))),
                Err("expired"),
            ),
            (
                "expired within the leeway",
                hs256(&with(claims.clone(), "exp", json!(NOW - 10))),
                ok.clone(),
            ),
            (
                "no exp",
                hs256(&without(claims.clone(), "exp")),
                Err("no_expiry"),
            ),
            (
                "exp null",
                hs256(&with(claims.clone(), "exp", Value::Null)),
                Err("no_expiry"),
            ),
            (
                "exp text",
                hs256(&with(claims.clone(), "exp", json!("tomorrow"))),
                Err("malformed"),
            ),
            (
                "nbf ahead",
                hs256(&with(claims.clone(), "nbf", json!(NOW + 31))),
                Err("not_yet_valid"),
            ),
            (
                "nbf within the leeway",
                hs256(&with(claims.clone(), "nbf", json!(NOW + 30))),
                ok.clone(),
            ),
            ("no nbf", hs256(&without(claims.clone(), "nbf")), ok.clone()),
            (
                "nbf text",
                hs256(&with(claims.clone(), "nbf", json!("now"))),
                Err("malformed"),
            ),
        ];
        for (what, token, want) in cases {
            assert_eq!(check(&token), want, "{what}");
        }
    }

    #[test]
    fn roles_give_the_highest_mapped_tier() {
        let cases = [
            (json!("navigator"), Ok(Tier::Navigator)),
            (json!(["subscriber", "coaching"]), Ok(Tier::Coaching)),
            (json!({"0": "administrator"}), Ok(Tier::Administrator)),
            (json!({"activator": true}), Ok(Tier::Activator)),
            (json!(["Subscriber"]), Ok(Tier::Observer)),
            (json!(["customer"]), Err("unknown_role")),
            (json!([]), Err("unknown_role")),
            (json!(17), Err("unknown_role")),
            (Value::Null, Err("no_roles_claim")),
        ];
        for (roles, want) in cases {
            let got = check(&hs256(&wp(roles.clone()))).map(|(_, t)| t);
            assert_eq!(got, want, "{roles}");
        }
        let mut claims = wp(json!([]));
        claims["data"]["user"] = json!({"id": 42});
        assert_eq!(check(&hs256(&claims)), Err("no_roles_claim"));
        assert_eq!(
            check(&hs256(&json!({"sub": "a", "exp": NOW + 60}))),
            Err("no_roles_claim")
        );
    }

    #[test]
    fn an_unknown_role_is_named_but_never_the_token() {
        let token = hs256(&wp(json!(["customer", "editor"])));
        let err = sso().verify(&token, NOW).unwrap_err();
        let message = err.message();
        assert!(message.contains("\"customer\", \"editor\""), "{message}");
        let (head, rest) = token.split_once('.').unwrap();
        assert!(
            !message.contains(head) && !message.contains(rest),
            "{message}"
        );
        let refused = sso().verify(&format!("eyJhbGciOiJub25lIn0.{}.", b64(b"{}")), NOW);
        let refused = refused.unwrap_err();
        assert_eq!(refused.code(), "wrong_algorithm");
        assert!(refused.message().contains("\"none\"") && refused.message().contains("HS256"));
        let hostile = hand_signed(
            &json!({"alg": "<script>alert(1)</script>-and-much-more"}),
            &json!({}),
        );
        let message = sso().verify(&hostile, NOW).unwrap_err().message();
        assert!(
            !message.contains('<') && message.contains("scriptalert1scri"),
            "{message}"
        );
    }

    #[test]
    fn the_subject_is_sub_then_the_user_id_then_the_login() {
        let base = wp(json!("subscriber"));
        let user = |u: Value| {
            let mut c = base.clone();
            c["data"]["user"] = u;
            c
        };
        let cases = [
            (with(base.clone(), "sub", json!("alice")), Ok("alice")),
            (with(base.clone(), "sub", json!(" alice ")), Ok("alice")),
            (base.clone(), Ok("42")),
            (with(base.clone(), "sub", json!("")), Ok("42")),
            (with(base.clone(), "sub", json!(7)), Ok("7")),
            (user(json!({"id": 7, "roles": "subscriber"})), Ok("7")),
            (
                user(json!({"login": "bob", "roles": "subscriber"})),
                Ok("bob"),
            ),
            (
                user(json!({"id": null, "login": "bob", "roles": "subscriber"})),
                Ok("bob"),
            ),
            (user(json!({"roles": "subscriber"})), Err("no_subject")),
            (
                user(json!({"id": "", "roles": "subscriber"})),
                Err("no_subject"),
            ),
            (
                with(user(json!({"roles": "subscriber"})), "sub", json!(true)),
                Err("no_subject"),
            ),
            (with(base.clone(), "sub", json!("a\nb")), Err("malformed")),
            (
                with(base.clone(), "sub", json!("x".repeat(MAX_SUBJECT_LEN + 1))),
                Err("malformed"),
            ),
        ];
        for (claims, want) in cases {
            let got = check(&hs256(&claims)).map(|(s, _)| s);
            assert_eq!(got, want.map(String::from), "{claims}");
        }
    }

    #[test]
    fn the_configured_algorithm_claim_path_and_map_are_used() {
        let mut s = settings();
        s.algorithm = HmacAlg::Hs512;
        s.roles_claim = "app.roles".into();
        s.tiers = BTreeMap::from([("member".to_string(), Tier::Navigator)]);
        s.leeway_secs = 0;
        let sso = Sso::from_inline(s).unwrap();
        let claims = json!({"sub": "u1", "exp": NOW + 5, "app": {"roles": ["member"]}});
        let token = mint(Algorithm::HS512, SECRET, &claims);
        let v = sso.verify(&token, NOW).unwrap();
        assert_eq!(
            v,
            Verified {
                subject: "u1".into(),
                tier: Tier::Navigator,
                token_expires_at: NOW + 5
            }
        );
        assert_eq!(sso.role_for(v.tier), Role::Trader);
        assert_eq!(sso.verify(&token, NOW + 5).unwrap_err().code(), "expired");
        let hs256 = mint(Algorithm::HS256, SECRET, &claims);
        assert_eq!(
            sso.verify(&hs256, NOW).unwrap_err().code(),
            "wrong_algorithm"
        );
        assert_eq!(
            verify_token(
                &mint(Algorithm::HS512, SECRET, &wp(json!("member"))),
                &sso,
                NOW
            )
            .unwrap_err(),
            TokenRefusal::NoRolesClaim {
                path: "app.roles".into()
            }
        );
    }

    #[test]
    fn the_secret_must_be_there_and_is_never_shown() {
        assert_eq!(Sso::new(settings(), b"").unwrap_err().code, "empty_secret");
        let truth = SsoSettings::new(SecretSource::Truth("wordpress.jwt_secret".into()));
        let err = Sso::from_inline(truth.clone()).unwrap_err();
        assert_eq!(
            (err.code, err.field.as_deref()),
            ("unresolved_secret", Some("access.sso.secret_from"))
        );
        let resolved = Sso::new(truth, SECRET).unwrap();
        assert!(resolved
            .verify(&hs256(&wp(json!("subscriber"))), NOW)
            .is_ok());
        let shown = format!("{:?}", sso());
        assert!(!shown.contains("wordpress-jwt-secret"), "{shown}");
        let algs = HmacAlg::ALL.map(algorithm);
        assert_eq!(algs, [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]);
        for r in [
            TokenRefusal::Malformed,
            TokenRefusal::BadSignature,
            TokenRefusal::Expired,
            TokenRefusal::NotYetValid,
            TokenRefusal::NoExpiry,
            TokenRefusal::NoSubject,
        ] {
            assert!(!r.message().is_empty() && r.to_string() == r.message());
        }
    }
}
