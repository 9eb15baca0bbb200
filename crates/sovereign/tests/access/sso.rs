//! Single sign-on end to end, with tokens this test mints (HMAC-SHA256 by hand, as a WordPress
//! site would): every refused token case, the session cookie and its CSRF token, logout, and
//! a tier-gate flip that blocks an open session on its very next request and ends its stream.

use hmac::{Hmac, KeyInit, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::util::{self, Engine, PATIENCE};

const SECRET: &str = "wp-jwt-secret-0123456789";

fn b64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A JWT with this header `alg`, signed with HMAC-SHA256 under `secret` (`None`: unsigned).
fn token(alg: &str, claims: &Value, secret: Option<&str>) -> String {
    let head = b64url(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes());
    let body = b64url(claims.to_string().as_bytes());
    let signing = format!("{head}.{body}");
    let sig = match secret {
        Some(s) => {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(s.as_bytes()).unwrap();
            mac.update(signing.as_bytes());
            b64url(&mac.finalize().into_bytes())
        }
        None => String::new(),
    };
    format!("{signing}.{sig}")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// WordPress-style claims for a user with these roles.
fn claims(roles: Value) -> Value {
    json!({"iss": "https://wp.example", "iat": now(), "exp": now() + 3600,
           "data": {"user": {"id": "42", "roles": roles}}})
}

fn config() -> String {
    format!(
        "[access]\nmode = \"keys\"\n[access.sso]\nsecret = \"{SECRET}\"\n[trading]\nsynthetic_feed = false\n"
    )
}

struct Answer {
    status: u16,
    body: Value,
    cookies: Vec<String>,
}

async fn send(
    e: &Engine,
    method: Method,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = e
        .http()
        .request(method, format!("{}{path}", e.url()))
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let cookies = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let body = resp.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        body,
        cookies,
    }
}

async fn sign_on(e: &Engine, token: &str) -> Answer {
    send(
        e,
        Method::POST,
        "/api/auth/sso",
        Some(json!({"token": token})),
        &[],
    )
    .await
}

/// The `name=value` of a Set-Cookie, ready for a `Cookie` header.
fn cookie_pair(answer: &Answer, name: &str) -> String {
    answer
        .cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", answer.cookies))
        .to_string()
}

#[tokio::test]
async fn a_wordpress_token_becomes_a_session_and_every_bad_token_is_refused() {
    let e = Engine::start(Some(&config()));
    let good = token("HS256", &claims(json!(["navigator"])), Some(SECRET));
    let mut expired = claims(json!(["navigator"]));
    expired["exp"] = json!(now() - 3600);
    let mut not_yet = claims(json!(["navigator"]));
    not_yet["nbf"] = json!(now() + 3600);
    let mut no_roles = claims(json!(["navigator"]));
    no_roles["data"]["user"]
        .as_object_mut()
        .unwrap()
        .remove("roles");
    let cases = [
        (
            "alg none",
            token("none", &claims(json!(["administrator"])), None),
        ),
        (
            "wrong algorithm",
            token("HS512", &claims(json!(["administrator"])), Some(SECRET)),
        ),
        (
            "wrong signature",
            token(
                "HS256",
                &claims(json!(["administrator"])),
                Some("not-the-secret"),
            ),
        ),
        ("expired", token("HS256", &expired, Some(SECRET))),
        ("not yet valid", token("HS256", &not_yet, Some(SECRET))),
        ("no roles claim", token("HS256", &no_roles, Some(SECRET))),
        (
            "unknown role",
            token("HS256", &claims(json!(["editor"])), Some(SECRET)),
        ),
        ("not a token", "garbage".to_string()),
    ];
    for (what, bad) in &cases {
        let a = sign_on(&e, bad).await;
        assert_eq!(a.status, 401, "{what}: {}", a.body);
        assert_eq!(a.body["error"]["code"], "unauthenticated", "{what}");
        assert!(
            a.cookies.is_empty(),
            "{what}: no cookie for a refused token"
        );
        assert!(
            !a.body.to_string().contains(bad.as_str()),
            "{what}: the token is not echoed"
        );
    }

    let a = sign_on(&e, &good).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        (a.body["tier"].as_str(), a.body["role"].as_str()),
        (Some("navigator"), Some("trader"))
    );
    let session = a
        .cookies
        .iter()
        .find(|c| c.starts_with("sov_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    assert!(
        !session.contains("Secure"),
        "no Secure flag over plain HTTP: {session}"
    );
    let cookie = cookie_pair(&a, "sov_session");
    let csrf = a.body["csrf_token"].as_str().unwrap().to_string();

    // Reads with the cookie; a change needs the CSRF token; admin routes stay closed.
    let h = [("cookie", cookie.as_str())];
    assert_eq!(
        send(&e, Method::GET, "/api/orders", None, &h).await.status,
        200
    );
    let tick = json!([{"symbol": "ES", "price": "4000"}]);
    let no_csrf = send(
        &e,
        Method::POST,
        "/api/market/ticks",
        Some(tick.clone()),
        &h,
    )
    .await;
    assert_eq!(
        (no_csrf.status, no_csrf.body["error"]["code"].as_str()),
        (403, Some("csrf_failed"))
    );
    let with_csrf = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    assert_eq!(
        send(
            &e,
            Method::POST,
            "/api/market/ticks",
            Some(tick),
            &with_csrf
        )
        .await
        .status,
        200
    );
    let admin_only = send(
        &e,
        Method::POST,
        "/api/risk/hardstop",
        Some(json!({"reason": "x"})),
        &with_csrf,
    )
    .await;
    assert_eq!(
        (admin_only.status, admin_only.body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    // A tampered cookie is refused.
    let tampered = format!("{}0", cookie);
    let t = send(
        &e,
        Method::GET,
        "/api/orders",
        None,
        &[("cookie", tampered.as_str())],
    )
    .await;
    assert_eq!(t.status, 401);

    // The link form signs on and lands on a page of this engine, never elsewhere.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (next, lands) in [("//evil.example/", "/"), ("/api/orders", "/api/orders")] {
        let link = no_redirects
            .get(format!("{}/api/auth/sso?token={good}&next={next}", e.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(link.status(), 303, "{next}");
        assert_eq!(link.headers()["location"], lands, "{next}");
        let cookies: Vec<_> = link.headers().get_all("set-cookie").iter().collect();
        assert!(
            cookies
                .iter()
                .any(|c| c.to_str().unwrap().starts_with("sov_session=")),
            "{next}: {cookies:?}"
        );
    }

    // Logout ends the session on the next request.
    let out = send(&e, Method::POST, "/api/auth/logout", None, &h).await;
    assert_eq!((out.status, out.body["ended"].as_bool()), (200, Some(true)));
    assert!(out
        .cookies
        .iter()
        .any(|c| c.starts_with("sov_session=;") && c.contains("Max-Age=0")));
    assert_eq!(
        send(&e, Method::GET, "/api/orders", None, &h).await.status,
        401
    );

    // No token or session text in the engine's log.
    let log = e.stderr();
    for (_, bad) in &cases {
        assert!(!log.contains(bad.as_str()));
    }
    assert!(!log.contains(&good) && !log.contains(&cookie[12..]) && !log.contains(&csrf));
}

#[tokio::test]
async fn a_tier_gate_flip_blocks_an_open_session_at_once_and_ends_its_stream() {
    let root = util::unique_dir("sovereign-e2e-gates");
    let admin = super::create_offline(&root.join("data"), "ops", "admin");
    let e = Engine::start_in(root, Some(&config()));
    let auth = format!("Bearer {admin}");
    let admin_h = [("authorization", auth.as_str())];

    let observer = sign_on(
        &e,
        &token("HS256", &claims(json!({"0": "subscriber"})), Some(SECRET)),
    )
    .await;
    assert_eq!(
        (observer.status, observer.body["tier"].as_str()),
        (200, Some("observer")),
        "{}",
        observer.body
    );
    let cookie = cookie_pair(&observer, "sov_session");
    let h = [("cookie", cookie.as_str())];
    assert_eq!(
        send(&e, Method::GET, "/api/positions", None, &h)
            .await
            .status,
        200
    );

    // An open stream of the session.
    let mut stream = e
        .http()
        .get(format!("{}/sse/orders", e.url()))
        .header("cookie", cookie.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    // Bad gate bodies change nothing.
    for (body, code) in [
        (json!({"allowed_tiers": {"wizard": true}}), "unknown_tier"),
        (
            json!({"allowed_tiers": {"activator": "yes"}}),
            "invalid_type",
        ),
        (
            json!({"allowed_tiers": {"coaching": false}}),
            "tier_always_allowed",
        ),
        (json!({"tiers": {}}), "unknown_field"),
    ] {
        let a = send(
            &e,
            Method::POST,
            "/api/tier-gates",
            Some(body.clone()),
            &admin_h,
        )
        .await;
        assert_eq!(
            (a.status, a.body["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}: {}",
            a.body
        );
    }
    assert_eq!(
        send(&e, Method::GET, "/api/positions", None, &h)
            .await
            .status,
        200
    );
    // An observer session reads the gates but may not change them.
    assert_eq!(
        send(&e, Method::GET, "/api/tier-gates", None, &h)
            .await
            .body["allowed_tiers"]["observer"],
        true
    );
    let csrf = observer.body["csrf_token"].as_str().unwrap();
    let own = [("cookie", cookie.as_str()), ("x-csrf-token", csrf)];
    let open = json!({"allowed_tiers": {"observer": true}});
    assert_eq!(
        send(&e, Method::POST, "/api/tier-gates", Some(open), &own)
            .await
            .status,
        403
    );

    let flip = send(
        &e,
        Method::POST,
        "/api/tier-gates",
        Some(json!({"allowed_tiers": {"observer": false}})),
        &admin_h,
    )
    .await;
    assert_eq!(flip.status, 200, "{}", flip.body);
    assert_eq!(flip.body["allowed_tiers"]["observer"], false);
    assert_eq!(flip.body["allowed_tiers"]["activator"], true);

    // The very next request of the open session is refused, and its cookie cleared.
    let blocked = send(&e, Method::GET, "/api/positions", None, &h).await;
    assert_eq!(
        (blocked.status, blocked.body["error"]["code"].as_str()),
        (403, Some("tier_blocked"))
    );
    assert!(blocked
        .cookies
        .iter()
        .any(|c| c.starts_with("sov_session=;") && c.contains("Max-Age=0")));
    // Its stream ends.
    let ended = tokio::time::timeout(PATIENCE, async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the blocked session's stream is still open");
    // A new sign-on of that tier is refused; another tier is not.
    let again = sign_on(
        &e,
        &token("HS256", &claims(json!(["subscriber"])), Some(SECRET)),
    )
    .await;
    assert_eq!(
        (again.status, again.body["error"]["code"].as_str()),
        (403, Some("tier_blocked"))
    );
    let activator = sign_on(
        &e,
        &token("HS256", &claims(json!(["activator"])), Some(SECRET)),
    )
    .await;
    assert_eq!(activator.status, 200);

    // The change is stored (it survives a restart) and on the audit trail.
    let e = e.restart();
    let gates = send(&e, Method::GET, "/api/tier-gates", None, &admin_h).await;
    assert_eq!(gates.body["allowed_tiers"]["observer"], false);
    let audit = send(&e, Method::GET, "/api/audit?limit=200", None, &admin_h).await;
    let text = audit.body.to_string();
    assert!(
        text.contains("tier_gates.changed") && text.contains("session.started"),
        "{text}"
    );
}

#[tokio::test]
async fn the_sso_secret_can_come_from_truth() {
    let root = util::unique_dir("sovereign-e2e-sso-truth");
    let write = |path: &str, v: Value| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, v.to_string()).unwrap();
    };
    write("truth/node.json", json!({"name": "box-1"}));
    write(
        "truth/components/wordpress.json",
        json!({"env": {"JWT_AUTH_SECRET_KEY": SECRET}}),
    );
    let e = Engine::start_in(
        root.clone(),
        Some("[access]\nmode = \"keys\"\n[access.sso]\nsecret_from = \"wordpress.JWT_AUTH_SECRET_KEY\"\n[truth]\ndir = \"truth\"\n[trading]\nsynthetic_feed = false\n"),
    );
    let good = token("HS256", &claims(json!(["coaching"])), Some(SECRET));
    let a = sign_on(&e, &good).await;
    assert_eq!(
        (a.status, a.body["tier"].as_str()),
        (200, Some("coaching")),
        "{}",
        a.body
    );
    let forged = token(
        "HS256",
        &claims(json!(["coaching"])),
        Some("another-secret-000"),
    );
    assert_eq!(sign_on(&e, &forged).await.status, 401);
    assert!(!e.stderr().contains(SECRET), "the secret is never logged");
}
