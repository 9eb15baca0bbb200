//! `sovereign anchor keygen|generate|verify`: pin files with a signed anchor document, and check
//! a file against its anchor later.
//!
//! Hashing streams the file (1 MiB reads) with a progress line on a terminal. Signatures are
//! Ed25519 from a key file (`anchor keygen`; ring) or OpenPGP made by the user's own `gpg`
//! (`--sign --key KEYID`; `--status-fd`, requiring `SIG_CREATED` / `GOODSIG` + `VALIDSIG`).
//! `verify` trusts a signature only when it was made by a key the user names (`--trusted-key`,
//! `--trusted-gpg`): the key an anchor carries proves nothing by itself.
//! Exit codes of `verify`: 0 intact, 3 the file changed (size or hash), 5 the signature is bad
//! or by an untrusted key, 1 the anchor or the file cannot be read (or the anchor is malformed).

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
    /// Check FILE against ANCHOR: size, SHA-256, and a signature by a key you trust.
    ///
    /// An anchor carries the public key that signed it, so anyone can sign a forged one with a
    /// fresh key: a signature counts only when made by a key given here. Exit 0 intact, 3 file
    /// changed, 5 signature bad or by an untrusted key, 1 anchor malformed or unreadable.
    Verify {
        anchor: PathBuf,
        file: PathBuf,
        /// A file of trusted keys: Ed25519 public keys in hex (as `anchor keygen` prints them)
        /// or `anchor keygen` key files, and `openpgp FINGERPRINT` lines; `#` comments.
        /// Repeatable. Default: the file named by SOVEREIGN_TRUSTED_KEYS.
        #[arg(long = "trusted-key", value_name = "FILE")]
        trusted_keys: Vec<PathBuf>,
        /// An OpenPGP key id or fingerprint whose signatures are trusted. Repeatable.
        #[arg(long = "trusted-gpg", value_name = "ID")]
        trusted_gpg: Vec<String>,
    },
}

/// The keys whose signatures `verify` accepts.
#[derive(Debug, Default)]
struct Trusted {
    /// Ed25519 public keys, lower-case hex.
    ed25519: Vec<String>,
    /// OpenPGP key ids or fingerprints, upper-case hex without spaces.
    openpgp: Vec<String>,
}

impl Trusted {
    fn load(files: &[PathBuf], gpg: &[String]) -> anyhow::Result<Trusted> {
        let mut trusted = Trusted {
            openpgp: gpg.iter().map(|k| normal_fpr(k)).collect(),
            ..Trusted::default()
        };
        let mut files = files.to_vec();
        if files.is_empty() {
            if let Some(path) = std::env::var_os("SOVEREIGN_TRUSTED_KEYS") {
                files.push(PathBuf::from(path));
            }
        }
        for path in &files {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the trusted keys {}", path.display()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or_default().trim();
                if line.is_empty() {
                    continue;
                }
                let bad = || {
                    anyhow!("{}:{}: not a trusted key (an Ed25519 public key in hex, an `anchor keygen` key file, or `openpgp FINGERPRINT`)", path.display(), n + 1)
                };
                if let Some(fpr) = line.strip_prefix("openpgp ") {
                    trusted.openpgp.push(normal_fpr(fpr));
                } else if line.len() == 64 && hex::decode(line).is_ok() {
                    trusted.ed25519.push(line.to_ascii_lowercase());
                } else {
                    // A key file from `anchor keygen`: trust its public half.
                    let bytes = hex::decode(line).map_err(|_| bad())?;
                    let pair = Ed25519KeyPair::from_pkcs8(&bytes).map_err(|_| bad())?;
                    trusted
                        .ed25519
                        .push(hex::encode(pair.public_key().as_ref()));
                }
            }
        }
        Ok(trusted)
    }

    fn is_empty(&self) -> bool {
        self.ed25519.is_empty() && self.openpgp.is_empty()
    }

    /// Whether gpg's VALIDSIG fingerprints (signing key, primary key) match a trusted id: the
    /// whole fingerprint or its key id (the last 16 or 8 hex digits).
    fn trusts_gpg(&self, fingerprints: &[String]) -> bool {
        self.openpgp
            .iter()
            .any(|want| want.len() >= 8 && fingerprints.iter().any(|f| f.ends_with(want.as_str())))
    }
}

fn normal_fpr(text: &str) -> String {
    text.trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase()
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
        AnchorCommand::Verify {
            anchor,
            file,
            trusted_keys,
            trusted_gpg,
        } => {
            let trusted = Trusted::load(&trusted_keys, &trusted_gpg).map_err(|e| Reported {
                exit: 1,
                line: format!("{e:#}"),
            })?;
            verify(&anchor, &file, &trusted)
        }
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
    outln!("public key: {}", hex::encode(pair.public_key().as_ref()));
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
        outln!("{}  {}  {}", anchor.sha256, anchor.size, path.display());
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

/// Verify with gpg: `None` unless gpg reports a good, valid signature; else the signing and
/// primary key fingerprints from `VALIDSIG`.
fn gpg_verify(armored: &str, text: &str) -> anyhow::Result<Option<Vec<String>>> {
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
    let valid = status
        .lines()
        .find_map(|l| l.strip_prefix("[GNUPG:] VALIDSIG "))
        .map(|rest| {
            // VALIDSIG <fpr> <date> … <primary-key-fpr> (the 10th field).
            let fields: Vec<&str> = rest.split_whitespace().collect();
            [fields.first(), fields.get(9)]
                .into_iter()
                .flatten()
                .map(|f| f.to_ascii_uppercase())
                .collect::<Vec<_>>()
        });
    Ok(valid.filter(|_| out.status.success() && good))
}

fn verify(anchor_path: &Path, file: &Path, trusted: &Trusted) -> anyhow::Result<()> {
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
    let untrusted = |key: &str| -> anyhow::Error {
        let hint = if trusted.is_empty() {
            "; no trusted key was given (--trusted-key FILE, --trusted-gpg ID)"
        } else {
            ""
        };
        bad(format!("signed by an untrusted key ({key}){hint}"))
    };
    let signature_note = match &anchor.signature {
        None if !trusted.is_empty() => {
            return Err(bad(
                "the anchor is unsigned, and a signature by a trusted key was asked for".into(),
            ))
        }
        None => "unsigned".to_string(),
        Some(Signature::Ed25519 { public_key, value }) => {
            let key =
                hex::decode(public_key).map_err(|_| bad("the public key is not hex".into()))?;
            let sig = hex::decode(value).map_err(|_| bad("the signature is not hex".into()))?;
            signature::UnparsedPublicKey::new(&signature::ED25519, key)
                .verify(signed.as_bytes(), &sig)
                .map_err(|_| bad("the Ed25519 signature does not match the anchor".into()))?;
            if !trusted.ed25519.contains(&public_key.to_ascii_lowercase()) {
                return Err(untrusted(public_key));
            }
            format!("Ed25519 signature good, by a trusted key ({public_key})")
        }
        Some(Signature::OpenPgp { key, armored }) => {
            let Some(fingerprints) = gpg_verify(armored, &signed).map_err(|e| Reported {
                exit: 1,
                line: format!("{e:#}"),
            })?
            else {
                return Err(bad(format!(
                    "gpg does not report a good, valid signature (key {key})"
                )));
            };
            if !trusted.trusts_gpg(&fingerprints) {
                return Err(untrusted(&fingerprints.join(", ")));
            }
            let by = fingerprints.first().map_or(key.as_str(), String::as_str);
            format!("OpenPGP signature good, by a trusted key ({by})")
        }
    };
    outln!(
        "ok: {} matches its anchor (size {size}, SHA-256 {sha256}); {signature_note}",
        file.display()
    );
    Ok(())
}
