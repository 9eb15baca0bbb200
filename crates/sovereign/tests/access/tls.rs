//! TLS in the binary with certificates made by the real `openssl`: HTTPS served, the pair
//! swapped on disk while a client keeps requesting (nothing fails, new handshakes get the new
//! certificate), the plain listener serving only the webhook and signal routes, and a missing
//! or mismatched pair refused at start with the file named.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::{self, wait_for, Engine, PATIENCE};

/// A self-signed certificate for 127.0.0.1 and its key, as `name.crt` and `name.key` in `dir`.
fn make_pair(dir: &Path, name: &str) {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=sovereign-test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        // A server certificate, not a CA (webpki refuses a CA as the end entity).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(dir.join(format!("{name}.crt")))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl (scripts/test-deps.sh installs it)");
    assert!(status.success());
}

/// Put pair `name` in force as `live.crt` / `live.key` (renamed into place, as certbot does).
fn install(dir: &Path, name: &str) {
    for ext in ["key", "crt"] {
        let staged = dir.join(format!("{name}.{ext}.staged"));
        std::fs::copy(dir.join(format!("{name}.{ext}")), &staged).unwrap();
        std::fs::rename(&staged, dir.join(format!("live.{ext}"))).unwrap();
    }
}

/// A client that trusts only certificate `name`.
fn trusting(dir: &Path, name: &str) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(dir.join(format!("{name}.crt"))).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

const CONFIG: &str = "[server.tls]\ncert = \"live.crt\"\nkey = \"live.key\"\n[server.plain]\nport = 0\n[trading]\nsynthetic_feed = false\n[webhooks.sources.tv]\ntoken = \"tok-123456\"\n";

#[tokio::test]
async fn https_is_served_and_a_renewed_certificate_is_taken_without_dropping_a_request() {
    let root = util::unique_dir("sovereign-e2e-tls");
    make_pair(&root, "first");
    make_pair(&root, "second");
    install(&root, "first");
    let e = Engine::start_in(root.clone(), Some(CONFIG));
    assert!(e.url().starts_with("https://127.0.0.1:"), "{}", e.url());
    let health = format!("{}/health", e.url());

    let first = trusting(&root, "first");
    let r = first.get(&health).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Plain HTTP to the TLS port is not served.
    let plain_to_tls = reqwest::Client::new()
        .get(health.replace("https://", "http://"))
        .send()
        .await;
    assert!(plain_to_tls.is_err() || plain_to_tls.is_ok_and(|r| r.status() != 200));

    // A client keeps requesting (over its kept-alive connection) while the pair is swapped.
    let keeps = tokio::spawn({
        let (client, url) = (first.clone(), health.clone());
        async move {
            let mut answered = 0;
            for _ in 0..40 {
                let r = client
                    .get(&url)
                    .send()
                    .await
                    .expect("a request failed during the swap");
                assert_eq!(r.status(), 200);
                answered += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            answered
        }
    });
    install(&root, "second");
    let second = trusting(&root, "second");
    wait_for(
        "the renewed certificate in new handshakes",
        PATIENCE,
        || {
            let (client, url) = (second.clone(), health.clone());
            async move {
                client
                    .get(&url)
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status() == 200)
                    .map(|_| ())
            }
        },
    )
    .await;
    assert_eq!(keeps.await.unwrap(), 40);
    // A new handshake no longer gets the old certificate.
    assert!(trusting(&root, "first").get(&health).send().await.is_err());
    assert!(
        e.stderr().contains("TLS certificate reloaded"),
        "{}",
        e.stderr()
    );

    // The plain listener: webhook and signal routes only.
    let plain = wait_for("the plain listener's line", PATIENCE, || {
        let lines = e.stdout_lines();
        async move {
            lines.iter().find_map(|l| {
                l.strip_prefix("webhook and signal routes also on ")
                    .map(str::to_string)
            })
        }
    })
    .await;
    let http = reqwest::Client::new();
    let hook = http
        .post(format!("{plain}/webhook/tv/tok-123456"))
        .header("content-type", "application/json")
        .body(r#"{"event":"ping","data":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 202);
    let orders = http
        .get(format!("{plain}/api/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(orders.status(), 404);
    let health = http.get(format!("{plain}/health")).send().await.unwrap();
    assert_eq!(health.status(), 404);
}

#[test]
fn a_missing_or_mismatched_pair_stops_the_start_naming_the_file() {
    let root = util::unique_dir("sovereign-e2e-tls-bad");
    make_pair(&root, "a");
    make_pair(&root, "b");
    let up = |config: &str| {
        let path = root.join("config.toml");
        std::fs::write(&path, config).unwrap();
        util::run_expecting_exit(&[
            "up",
            "--port",
            "0",
            "--config",
            path.to_str().unwrap(),
            "--data-dir",
            root.join("data").to_str().unwrap(),
        ])
    };

    let mismatched = up("[server.tls]\ncert = \"a.crt\"\nkey = \"b.key\"\n");
    assert_eq!(mismatched.code, Some(1), "{mismatched:?}");
    let lines = mismatched.stderr_lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("b.key")
            && lines[0].contains("does not belong")
            && lines[0].contains("a.crt"),
        "{lines:?}"
    );

    let missing =
        up("[server]\nport = 0\n\n[server.tls]\ncert = \"nowhere.crt\"\nkey = \"a.key\"\n");
    assert_ne!(missing.code, Some(0), "{missing:?}");
    assert!(
        missing.stderr.contains("config.toml:5") && missing.stderr.contains("nowhere.crt"),
        "{}",
        missing.stderr
    );

    let not_pem = {
        std::fs::write(root.join("junk.crt"), "not a certificate").unwrap();
        up("[server.tls]\ncert = \"junk.crt\"\nkey = \"a.key\"\n")
    };
    assert_eq!(not_pem.code, Some(1), "{not_pem:?}");
    assert!(not_pem.stderr.contains("junk.crt"), "{}", not_pem.stderr);
    assert!(
        !root.join("data").exists(),
        "a refused start leaves no data dir"
    );
}
