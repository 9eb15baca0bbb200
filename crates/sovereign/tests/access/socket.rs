//! The data dir's socket end to end: with no key at all, `keys create|list|revoke` reach the
//! running engine through `DATA/sovereign.sock` (so the first admin key can be made while it
//! runs), as `local` on the audit trail; a revocation bites on the next TCP request; the socket
//! is the owner's alone, a killed engine's socket is replaced at the next start, and a clean
//! stop removes it, after which `keys` works offline again.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use reqwest::Method;
use serde_json::Value;

use crate::util::{self, Engine};

/// `sovereign keys ARGS… --data-dir DATA`, with no key and no URL.
fn keys(data: &Path, args: &[&str]) -> util::CliOutput {
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data-dir", data.to_str().unwrap()]);
    util::cli(&all)
}

/// `keys create NAME --role ROLE`, requiring success; the printed key.
fn create(data: &Path, name: &str, role: &str) -> String {
    let out = keys(data, &["create", name, "--role", role]);
    assert!(out.ok(), "{out:?}");
    let key = out.stdout.trim().to_string();
    assert!(key.starts_with("sov_"), "{out:?}");
    key
}

/// `GET path` over TCP with `key`.
async fn get_with(e: &Engine, path: &str, key: &str) -> (u16, Value) {
    let auth = format!("Bearer {key}");
    e.call(Method::GET, path, None, &[("authorization", auth.as_str())])
        .await
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn keys_reach_the_running_engine_through_its_socket_without_a_key() {
    let root = util::unique_dir("sovereign-e2e-socket");
    let mut e = Engine::start_in(root, Some("[access]\nmode = \"keys\"\n"));
    let data = e.root().join("data");
    let socket = data.join("sovereign.sock");
    assert_eq!(mode(&socket), 0o600, "the socket is the owner's alone");
    // No key exists yet: over TCP nothing past the public routes.
    assert_eq!(e.get("/api/keys").await.0, 401);

    // The first admin key, made while the engine runs; it works over TCP at once.
    let ops = create(&data, "ops", "admin");
    let (code, body) = get_with(&e, "/api/keys", &ops).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["keys"][0]["name"], "ops", "{body}");
    let auditor = create(&data, "auditor", "admin");

    // Revoked through the socket: the very next request with it is refused.
    let revoked = keys(&data, &["revoke", "ops"]);
    assert!(revoked.ok(), "{revoked:?}");
    let (code, body) = get_with(&e, "/api/keys", &ops).await;
    assert_eq!(code, 401, "{body}");

    // The socket's requests are `local` on the audit trail.
    let (code, audit) = get_with(&e, "/api/audit?limit=1000", &auditor).await;
    assert_eq!(code, 200, "{audit}");
    let actors = |kind: &str| -> Vec<String> {
        audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == kind)
            .map(|r| r["actor"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(actors("key.created"), ["local", "local"], "{audit}");
    assert_eq!(actors("key.revoked"), ["local"], "{audit}");

    // Killed: the socket file stays behind, yet `keys` works offline (the store is free)...
    e.kill9();
    assert!(socket.exists(), "a killed engine cannot remove its socket");
    create(&data, "late", "viewer");
    // ...and the next engine replaces the stale socket with its own.
    let mut e = e.resume();
    assert_eq!(mode(&socket), 0o600);
    let listed = keys(&data, &["list"]);
    assert!(
        listed.ok() && listed.stdout.contains("late") && listed.stdout.contains("auditor"),
        "{listed:?}"
    );
    let (code, body) = get_with(&e, "/api/keys", &auditor).await;
    assert_eq!(code, 200, "{body}");

    // A clean stop removes the socket; `keys` is offline again.
    let stopped = e.stop();
    assert!(stopped.status.success(), "{stopped:?}\n{}", e.stderr());
    assert!(!socket.exists(), "the socket is removed at a clean stop");
    create(&data, "after", "viewer");
}
