//! `sovereign anchor keygen|generate|verify`: pin files with a signed anchor document, and check
//! a file against its anchor later.
//!
//! Hashing streams the file (1 MiB reads) with a progress line on a terminal. Signatures are
//! Ed25519 from a key file (`anchor keygen`; ring) or OpenPGP made by the user's own `gpg`
//! (`--sign --key KEYID`; `--status-fd`, requiring `SIG_CREATED` / `GOODSIG` + `VALIDSIG`).
//! Exit codes of `verify`: 0 intact, 3 the file changed (size or hash), 5 the signature is bad,
//! 1 the anchor or the file cannot be read (or the anchor is malformed).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, Context};
use chrono::Utc;
use clap::Subcommand;
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use sha2::{Digest, Sha256};
use sovereign_core::anchor::{Anchor, Signature};

use crate::client::Reported;

pub const EXIT_CHANGED: u8 = 3;
pub const EXIT_BAD_SIGNATURE: u8 = 5;

#[derive(Subcommand)]
pub enum AnchorCommand {
    /// Make an Ed25519 key file for `generate --sign-with` (machines without GPG).
    Keygen {
        /// Where to write the private key (created with mode 0600; never overwritten).
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Write one anchor (YAML) per file into --output.
    Generate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, short)]
        output: PathBuf,
        /// Why these files are anchored.
        #[arg(long)]
        purpose: String,
        /// Sign with your own gpg (detached, ASCII-armored) as --key.
        #[arg(long, requires = "key", conflicts_with = "sign_with")]
        sign: bool,
        /// The gpg key id for --sign.
        #[arg(long)]
        key: Option<String>,
        /// Sign with an Ed25519 key file from `anchor keygen`.
        #[arg(long)]
        sign_with: Option<PathBuf>,
    },
    /// Anchor the engine's audit trail head: verify the trail, write `audit-head-SEQ.json`
    /// (seq, hash, records, time) into --output and an anchor for it. Later,
    /// `sovereign audit verify EXPORT --head audit-head-SEQ.json` proves the trail still passes
    /// through that record.
    Audit {
        #[arg(long, short)]
        output: PathBuf,
        #[arg(long, default_value = "audit trail head")]
        purpose: String,
        #[arg(long, requires = "key", conflicts_with = "sign_with")]
        sign: bool,
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        sign_with: Option<PathBuf>,
        #[command(flatten)]
        client: crate::client::ClientArgs,
    },
    /// Check FILE against ANCHOR: size, SHA-256 and signature.
    /// Exit 0 intact, 3 file changed, 5 signature bad, 1 anchor malformed or unreadable.
    Verify { anchor: PathBuf, file: PathBuf },
}

pub fn run(cmd: AnchorCommand) -> anyhow::Result<()> {
    match cmd {
        AnchorCommand::Keygen { output } => keygen(&output),
        AnchorCommand::Generate {
            files,
            output,
            purpose,
            sign,
            key,
            sign_with,
        } => generate(&files, &output, &purpose, &signer(sign, key, sign_with)?),
        AnchorCommand::Verify { anchor, file } => verify(&anchor, &file),
        AnchorCommand::Audit {
            output,
            purpose,
            sign,
            key,
            sign_with,
            client,
        } => {
            let signer = signer(sign, key, sign_with)?;
            let records = crate::client::block_on(crate::audit::fetch_all(&client))?;
            let head =
                sovereign_core::audit::verify(&records, None, None).map_err(|t| Reported {
                    exit: crate::audit::EXIT_TAMPERED,
                    line: format!("tampered: {t}; refusing to anchor"),
                })?;
            if head.records == 0 {
                return Err(anyhow!("the audit trail is empty; nothing to anchor"));
            }
            std::fs::create_dir_all(&output)
                .with_context(|| format!("cannot create {}", output.display()))?;
            let file = output.join(format!("audit-head-{}.json", head.seq));
            let body = serde_json::json!({"seq": head.seq, "hash": head.hash, "records": head.records, "at": Utc::now().to_rfc3339()});
            std::fs::write(&file, format!("{body}\n"))
                .with_context(|| format!("cannot write {}", file.display()))?;
            generate(std::slice::from_ref(&file), &output, &purpose, &signer)
        }
    }
}

/// The signer the flags ask for (clap has already refused contradictory ones).
fn signer(sign: bool, key: Option<String>, sign_with: Option<PathBuf>) -> anyhow::Result<Signer> {
    Ok(match (sign, key, sign_with) {
        (true, Some(key), _) => Signer::Gpg(key),
        (_, _, Some(path)) => Signer::Ed25519(load_key(&path)?),
        _ => Signer::None,
    })
}

enum Signer {
    None,
    Ed25519(Ed25519KeyPair),
    Gpg(String),
}

fn keygen(output: &Path) -> anyhow::Result<()> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 =
        Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| anyhow!("cannot generate a key"))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| anyhow!("generated key is unusable"))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(output)
        .with_context(|| format!("cannot create {} (it must not exist yet)", output.display()))?;
    writeln!(f, "{}", hex::encode(pkcs8.as_ref()))?;
    println!("public key: {}", hex::encode(pair.public_key().as_ref()));
    Ok(())
}

fn load_key(path: &Path) -> anyhow::Result<Ed25519KeyPair> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let bytes = hex::decode(text.trim())
        .map_err(|_| anyhow!("{} is not a key file from `anchor keygen`", path.display()))?;
    Ed25519KeyPair::from_pkcs8(&bytes)
        .map_err(|_| anyhow!("{} is not a key file from `anchor keygen`", path.display()))
}

/// SHA-256 and size of a file, streamed; a progress line on a terminal for large files.
fn hash_file(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let total = f.metadata().map(|m| m.len()).unwrap_or(0);
    let show = std::io::stderr().is_terminal() && total > 64 * 1024 * 1024;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        if show {
            eprint!(
                "\rhashing {}: {}%",
                path.display(),
                done * 100 / total.max(1)
            );
        }
    }
    if show {
        eprintln!();
    }
    Ok((done, hex::encode(hasher.finalize())))
}

fn generate(
    files: &[PathBuf],
    out_dir: &Path,
    purpose: &str,
    signer: &Signer,
) -> anyhow::Result<()> {
    // Validate everything first: a missing file writes nothing.
    for f in files {
        if !f.is_file() {
            return Err(anyhow!(
                "{} is not a readable file; nothing was written",
                f.display()
            ));
        }
    }
    if purpose.trim().is_empty() {
        return Err(anyhow!("--purpose must say why the files are anchored"));
    }
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mut anchors = Vec::new();
    for f in files {
        let (size, sha256) = hash_file(f)?;
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut anchor = Anchor {
            name: name.clone(),
            size,
            sha256,
            created_at: Utc::now(),
            purpose: purpose.to_string(),
            host: host.clone(),
            tool: concat!("sovereign ", env!("CARGO_PKG_VERSION")).to_string(),
            signature: None,
        };
        let text = anchor.signed_text();
        anchor.signature = match signer {
            Signer::None => None,
            Signer::Ed25519(pair) => Some(Signature::Ed25519 {
                public_key: hex::encode(pair.public_key().as_ref()),
                value: hex::encode(pair.sign(text.as_bytes()).as_ref()),
            }),
            Signer::Gpg(key) => Some(Signature::OpenPgp {
                key: key.clone(),
                armored: gpg_sign(key, &text)?,
            }),
        };
        anchors.push((out_dir.join(format!("{name}.anchor.yaml")), anchor));
    }
    // Only now write, each file whole (temp + rename) so no anchor is half-written.
    for (path, anchor) in &anchors {
        let tmp = path.with_extension("yaml.tmp");
        std::fs::write(&tmp, anchor.render())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}  {}  {}", anchor.sha256, anchor.size, path.display());
    }
    Ok(())
}

fn gpg_sign(key: &str, text: &str) -> anyhow::Result<String> {
    let mut child = Command::new("gpg")
        .args([
            "--batch",
            "--yes",
            "--status-fd",
            "2",
            "--armor",
            "--detach-sign",
            "--local-user",
            key,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow!("cannot run gpg: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // gpg may stop reading early (an unknown key); its status output says why.
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child.wait_with_output()?;
    let status = String::from_utf8_lossy(&out.stderr);
    if !out.status.success()
        || !status
            .lines()
            .any(|l| l.starts_with("[GNUPG:] SIG_CREATED "))
    {
        let reason = status
            .lines()
            .find(|l| l.starts_with("gpg: ") && !l.contains("WARNING"))
            .unwrap_or("gpg did not report SIG_CREATED");
        return Err(anyhow!(
            "gpg could not sign with key {key:?}: {}",
            reason.trim_start_matches("gpg: ")
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn gpg_verify(armored: &str, text: &str) -> anyhow::Result<bool> {
    let dir = std::env::temp_dir().join(format!("sovereign-anchor-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (sig, data) = (dir.join("sig.asc"), dir.join("data"));
    std::fs::write(&sig, armored)?;
    std::fs::write(&data, text)?;
    let out = Command::new("gpg")
        .args(["--batch", "--status-fd", "1", "--verify"])
        .arg(&sig)
        .arg(&data)
        .output()
        .map_err(|e| anyhow!("cannot run gpg: {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    let out = out?;
    let status = String::from_utf8_lossy(&out.stdout);
    let good = status.lines().any(|l| l.starts_with("[GNUPG:] GOODSIG "));
    let valid = status.lines().any(|l| l.starts_with("[GNUPG:] VALIDSIG "));
    Ok(out.status.success() && good && valid)
}

fn verify(anchor_path: &Path, file: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(anchor_path).map_err(|e| Reported {
        exit: 1,
        line: format!("{}: cannot read the anchor: {e}", anchor_path.display()),
    })?;
    let anchor = Anchor::parse(&text).map_err(|e| Reported {
        exit: 1,
        line: format!("{}: anchor malformed: {e}", anchor_path.display()),
    })?;
    let (size, sha256) = hash_file(file).map_err(|e| Reported {
        exit: 1,
        line: format!("{e:#}"),
    })?;
    if size != anchor.size {
        return Err(Reported {
            exit: EXIT_CHANGED,
            line: format!(
                "file changed: {} is {size} bytes, the anchor says {}",
                file.display(),
                anchor.size
            ),
        }
        .into());
    }
    if sha256 != anchor.sha256 {
        return Err(Reported {
            exit: EXIT_CHANGED,
            line: format!(
                "file changed: {} has SHA-256 {sha256}, the anchor says {}",
                file.display(),
                anchor.sha256
            ),
        }
        .into());
    }
    let signed = anchor.signed_text();
    let bad = |why: String| -> anyhow::Error {
        Reported {
            exit: EXIT_BAD_SIGNATURE,
            line: format!("signature bad: {why}"),
        }
        .into()
    };
    let signature_note = match &anchor.signature {
        None => "unsigned".to_string(),
        Some(Signature::Ed25519 { public_key, value }) => {
            let key =
                hex::decode(public_key).map_err(|_| bad("the public key is not hex".into()))?;
            let sig = hex::decode(value).map_err(|_| bad("the signature is not hex".into()))?;
            signature::UnparsedPublicKey::new(&signature::ED25519, key)
                .verify(signed.as_bytes(), &sig)
                .map_err(|_| bad("the Ed25519 signature does not match the anchor".into()))?;
            format!("Ed25519 signature good (key {public_key})")
        }
        Some(Signature::OpenPgp { key, armored }) => {
            if !gpg_verify(armored, &signed).map_err(|e| Reported {
                exit: 1,
                line: format!("{e:#}"),
            })? {
                return Err(bad(format!(
                    "gpg does not report a good, valid signature (key {key})"
                )));
            }
            format!("OpenPGP signature good (key {key})")
        }
    };
    println!(
        "ok: {} matches its anchor (size {size}, SHA-256 {sha256}); {signature_note}",
        file.display()
    );
    Ok(())
}
