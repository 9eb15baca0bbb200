//! Anchors through the real binary: Ed25519 key files and the real `gpg` (a throwaway key in a
//! private GNUPGHOME), a changed file, a changed anchor, a bad signature, malformed input — each
//! with its own exit code and one line saying what failed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{unique_dir, BIN};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(dir: &Path, gnupg: Option<&Path>, args: &[&str]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .args(args)
        .env_remove("SOVEREIGN_TRUSTED_KEYS");
    if let Some(home) = gnupg {
        cmd.env("GNUPGHOME", home);
    }
    let out = cmd.output().expect("run sovereign");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn one_line(r: &Run) -> &str {
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {:?}", r.stderr);
    lines[0]
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from} in {text}");
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn ed25519_anchors_catch_each_kind_of_failure() {
    let dir = unique_dir("sovereign-anchor");
    std::fs::write(dir.join("report.csv"), "date,pnl\n2026-11-24,1250.50\n").unwrap();
    std::fs::write(dir.join("big.bin"), vec![7u8; 3 * 1024 * 1024 + 17]).unwrap();

    let keygen = run(&dir, None, &["anchor", "keygen", "--output", "desk.key"]);
    assert_eq!(keygen.code, Some(0), "{}", keygen.stderr);
    let public = keygen
        .stdout
        .trim()
        .strip_prefix("public key: ")
        .unwrap()
        .to_string();
    assert_eq!(public.len(), 64);
    let again = run(&dir, None, &["anchor", "keygen", "--output", "desk.key"]);
    assert_eq!(again.code, Some(1), "a key file is never overwritten");

    let gen = run(
        &dir,
        None,
        &[
            "anchor",
            "generate",
            "report.csv",
            "big.bin",
            "--output",
            "anchors",
            "--purpose",
            "month-end statement",
            "--sign-with",
            "desk.key",
        ],
    );
    assert_eq!(gen.code, Some(0), "{}", gen.stderr);
    let anchor = dir.join("anchors/report.csv.anchor.yaml");
    let text = std::fs::read_to_string(&anchor).unwrap();
    for needle in [
        "name: \"report.csv\"",
        "size: 28",
        "purpose: \"month-end statement\"",
        "type: ed25519",
        &format!("public_key: {public}"),
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    // The anchor's hash is the file's SHA-256 as sha256sum computes it.
    let sum = Command::new("sha256sum")
        .arg(dir.join("big.bin"))
        .output()
        .unwrap();
    let expected = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let big = std::fs::read_to_string(dir.join("anchors/big.bin.anchor.yaml")).unwrap();
    assert!(big.contains(&format!("sha256: {expected}")), "{big}");

    // Only a key the user trusts makes a signature count: the key file itself, or a keys file
    // with its public half.
    let ok = run(
        &dir,
        None,
        &[
            "anchor",
            "verify",
            "anchors/report.csv.anchor.yaml",
            "report.csv",
            "--trusted-key",
            "desk.key",
        ],
    );
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    assert!(
        ok.stdout
            .contains("Ed25519 signature good, by a trusted key"),
        "{}",
        ok.stdout
    );
    std::fs::write(dir.join("trusted.keys"), format!("# the desk\n{public}\n")).unwrap();
    let listed = run(
        &dir,
        None,
        &[
            "anchor",
            "verify",
            "anchors/report.csv.anchor.yaml",
            "report.csv",
            "--trusted-key",
            "trusted.keys",
        ],
    );
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    let unnamed = run(
        &dir,
        None,
        &[
            "anchor",
            "verify",
            "anchors/report.csv.anchor.yaml",
            "report.csv",
        ],
    );
    assert_eq!(unnamed.code, Some(5), "{}", unnamed.stderr);
    assert!(
        one_line(&unnamed).contains("signed by an untrusted key"),
        "{}",
        unnamed.stderr
    );
    // A forger signs a doctored anchor with a fresh key: a good signature, an untrusted key.
    let forger = run(&dir, None, &["anchor", "keygen", "--output", "forger.key"]);
    assert_eq!(forger.code, Some(0), "{}", forger.stderr);
    std::fs::write(dir.join("fake.csv"), "date,pnl\n2026-11-24,9999.99\n").unwrap();
    let forged = run(
        &dir,
        None,
        &[
            "anchor",
            "generate",
            "fake.csv",
            "--output",
            "forged",
            "--purpose",
            "month-end statement",
            "--sign-with",
            "forger.key",
        ],
    );
    assert_eq!(forged.code, Some(0), "{}", forged.stderr);
    let caught = run(
        &dir,
        None,
        &[
            "anchor",
            "verify",
            "forged/fake.csv.anchor.yaml",
            "fake.csv",
            "--trusted-key",
            "trusted.keys",
        ],
    );
    assert_eq!(caught.code, Some(5), "{}", caught.stderr);
    assert!(
        one_line(&caught).contains("signed by an untrusted key"),
        "{}",
        caught.stderr
    );

    // The file changed: exit 3.
    std::fs::write(dir.join("changed.csv"), "date,pnl\n2026-11-24,9250.50\n").unwrap();
    let changed = run(
        &dir,
        None,
        &[
            "anchor",
            "verify",
            "anchors/report.csv.anchor.yaml",
            "changed.csv",
        ],
    );
    assert_eq!(changed.code, Some(3));
    assert!(
        one_line(&changed).contains("file changed") && changed.stderr.contains("SHA-256"),
        "{}",
        changed.stderr
    );
    std::fs::write(
        dir.join("longer.csv"),
        "date,pnl\n2026-11-24,1250.50\nmore\n",
    )
    .unwrap();
    let longer = run(
        &dir,
        None,
        &[
            "anchor",
            "verify",
            "anchors/report.csv.anchor.yaml",
            "longer.csv",
        ],
    );
    assert_eq!(longer.code, Some(3));
    assert!(one_line(&longer).contains("bytes"), "{}", longer.stderr);

    // The anchor changed (its purpose), or its signature: exit 5.
    let forged = dir.join("anchors/forged.yaml");
    std::fs::copy(&anchor, &forged).unwrap();
    edit(&forged, "month-end statement", "quarter-end statement");
    let bad = run(
        &dir,
        None,
        &["anchor", "verify", "anchors/forged.yaml", "report.csv"],
    );
    assert_eq!(bad.code, Some(5));
    assert!(
        one_line(&bad).starts_with("signature bad"),
        "{}",
        bad.stderr
    );

    // Malformed anchor: exit 1, naming the line.
    let broken = dir.join("anchors/broken.yaml");
    std::fs::write(&broken, text.replace("size: 28", "size: thirty-four")).unwrap();
    let malformed = run(
        &dir,
        None,
        &["anchor", "verify", "anchors/broken.yaml", "report.csv"],
    );
    assert_eq!(malformed.code, Some(1));
    assert!(
        one_line(&malformed).contains("anchor malformed: line 4"),
        "{}",
        malformed.stderr
    );

    // A missing input file: exit 1, nothing written.
    let missing = run(
        &dir,
        None,
        &[
            "anchor",
            "generate",
            "report.csv",
            "nope.csv",
            "--output",
            "more",
            "--purpose",
            "x",
        ],
    );
    assert_eq!(missing.code, Some(1));
    assert!(
        one_line(&missing).contains("nope.csv"),
        "{}",
        missing.stderr
    );
    assert!(!dir.join("more").exists(), "nothing half-written");
    let _ = std::fs::remove_dir_all(&dir);
}

fn gpg_available() -> bool {
    Command::new("gpg")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn gpg_anchors_are_signed_and_verified_by_the_real_gpg() {
    assert!(
        gpg_available(),
        "gpg is required for this test (scripts/test-deps.sh installs it)"
    );
    let dir = unique_dir("sovereign-anchor-gpg");
    let home: PathBuf = dir.join("gnupg");
    std::fs::create_dir_all(&home).unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let made = Command::new("gpg")
        .env("GNUPGHOME", &home)
        .args([
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "Anchor Test <anchor@example.test>",
            "ed25519",
            "sign",
            "never",
        ])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::write(dir.join("ledger.txt"), "2026-11-24 close 5001.25\n").unwrap();

    let gen = run(
        &dir,
        Some(&home),
        &[
            "anchor",
            "generate",
            "ledger.txt",
            "--output",
            "a",
            "--purpose",
            "close",
            "--sign",
            "--key",
            "anchor@example.test",
        ],
    );
    assert_eq!(gen.code, Some(0), "{}", gen.stderr);
    let anchor = dir.join("a/ledger.txt.anchor.yaml");
    let text = std::fs::read_to_string(&anchor).unwrap();
    assert!(
        text.contains("type: openpgp") && text.contains("-----BEGIN PGP SIGNATURE-----"),
        "{text}"
    );

    // The key's fingerprint, as the user would copy it from `gpg --list-keys`.
    let listing = Command::new("gpg")
        .env("GNUPGHOME", &home)
        .args([
            "--batch",
            "--with-colons",
            "--list-keys",
            "anchor@example.test",
        ])
        .output()
        .unwrap();
    let fpr = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("fpr:")
                .map(|r| r.trim_matches(':').to_string())
        })
        .expect("a fingerprint");
    let ok = run(
        &dir,
        Some(&home),
        &[
            "anchor",
            "verify",
            "a/ledger.txt.anchor.yaml",
            "ledger.txt",
            "--trusted-gpg",
            &fpr,
        ],
    );
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    assert!(
        ok.stdout
            .contains("OpenPGP signature good, by a trusted key"),
        "{}",
        ok.stdout
    );
    // The long key id works too; an unnamed key does not.
    let key_id = &fpr[fpr.len() - 16..];
    let by_id = run(
        &dir,
        Some(&home),
        &[
            "anchor",
            "verify",
            "a/ledger.txt.anchor.yaml",
            "ledger.txt",
            "--trusted-gpg",
            key_id,
        ],
    );
    assert_eq!(by_id.code, Some(0), "{}", by_id.stderr);
    let unnamed = run(
        &dir,
        Some(&home),
        &["anchor", "verify", "a/ledger.txt.anchor.yaml", "ledger.txt"],
    );
    assert_eq!(unnamed.code, Some(5), "{}", unnamed.stderr);
    assert!(
        one_line(&unnamed).contains("signed by an untrusted key"),
        "{}",
        unnamed.stderr
    );

    // A changed anchor no longer matches gpg's signature.
    edit(&anchor, "purpose: \"close\"", "purpose: \"open\"");
    let bad = run(
        &dir,
        Some(&home),
        &["anchor", "verify", "a/ledger.txt.anchor.yaml", "ledger.txt"],
    );
    assert_eq!(bad.code, Some(5), "{}", bad.stderr);
    assert!(
        one_line(&bad).starts_with("signature bad"),
        "{}",
        bad.stderr
    );

    // A key that does not exist: one line naming the cause, nothing written.
    let nokey = run(
        &dir,
        Some(&home),
        &[
            "anchor",
            "generate",
            "ledger.txt",
            "--output",
            "b",
            "--purpose",
            "x",
            "--sign",
            "--key",
            "nobody@example.test",
        ],
    );
    assert_eq!(nokey.code, Some(1));
    assert!(
        one_line(&nokey).contains("nobody@example.test"),
        "{}",
        nokey.stderr
    );
    assert!(!dir.join("b/ledger.txt.anchor.yaml").exists());
    // Stop the agent gpg started for this home, then remove it.
    let _ = Command::new("gpgconf")
        .env("GNUPGHOME", &home)
        .args(["--kill", "gpg-agent"])
        .output();
    let _ = std::fs::remove_dir_all(&dir);
}
