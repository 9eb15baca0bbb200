//! Health checks: one attempt each, bounded by the check's timeout, answering a verdict and a
//! one-line detail (never a credential).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::settings::Check;

/// The last heartbeat of a service.
#[derive(Debug, Clone)]
pub struct Beat {
    pub at: DateTime<Utc>,
    pub received: Instant,
    /// The JSON the service sent with it (its last status), if any.
    pub payload: Value,
}

pub type Beats = Arc<Mutex<Option<Beat>>>;

/// Run `check` once. `None`: no verdict yet (a heartbeat service still within its first TTL).
pub async fn run(
    check: &Check,
    timeout: Duration,
    http: &reqwest::Client,
    beat: &Beats,
    started: Instant,
) -> Option<(bool, String)> {
    let verdict = match check {
        Check::Heartbeat { ttl } => {
            let last = crate::support::lock(beat).clone();
            return match last {
                Some(b) if b.received.elapsed() <= *ttl => Some((
                    true,
                    format!("heartbeat {} ms ago", b.received.elapsed().as_millis()),
                )),
                Some(b) => Some((
                    false,
                    format!(
                        "no heartbeat for {} ms (ttl {} ms)",
                        b.received.elapsed().as_millis(),
                        ttl.as_millis()
                    ),
                )),
                None if started.elapsed() < *ttl => None,
                None => Some((
                    false,
                    format!("no heartbeat within the ttl of {} ms", ttl.as_millis()),
                )),
            };
        }
        _ => tokio::time::timeout(timeout, attempt(check, timeout, http)).await,
    };
    Some(verdict.unwrap_or_else(|_| (false, format!("timed out after {} ms", timeout.as_millis()))))
}

async fn attempt(check: &Check, timeout: Duration, http: &reqwest::Client) -> (bool, String) {
    match check {
        Check::Http { url, status } => match http.get(url).timeout(timeout).send().await {
            Ok(resp) => {
                let got = resp.status().as_u16();
                let ok = status.map_or(resp.status().is_success(), |s| s == got);
                (ok, format!("HTTP {got}"))
            }
            Err(e) => (false, crate::support::error_chain(&e.without_url())),
        },
        Check::Tcp { addr } => match tokio::net::TcpStream::connect(addr.as_str()).await {
            Ok(_) => (true, format!("connected to {addr}")),
            Err(e) => (false, format!("{addr}: {e}")),
        },
        Check::Command { argv, cwd } => {
            let out = tokio::process::Command::new(&argv[0])
                .args(&argv[1..])
                .current_dir(cwd)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status()
                .await;
            match out {
                Ok(s) if s.success() => (true, "exit 0".into()),
                Ok(s) => (false, format!("{s}")),
                Err(e) => (false, format!("{}: {e}", argv[0])),
            }
        }
        Check::RedisKey {
            addr,
            password,
            db,
            key,
            ttl,
        } => match redis_get(addr, password.as_deref(), *db, key).await {
            Ok(None) => (false, format!("redis key {key} is missing")),
            Ok(Some(value)) => match stamp_age(&value) {
                Some(age) if age > *ttl => (
                    false,
                    format!(
                        "redis key {key} is {} ms old (ttl {} ms)",
                        age.as_millis(),
                        ttl.as_millis()
                    ),
                ),
                Some(age) => (
                    true,
                    format!("redis key {key} is {} ms old", age.as_millis()),
                ),
                None => (true, format!("redis key {key} is present")),
            },
            Err(e) => (false, format!("redis {addr}: {e}")),
        },
        Check::Heartbeat { .. } => (false, "heartbeats are judged by the supervisor".into()),
    }
}

/// How old a heartbeat value is, when it holds a time: Unix seconds (with fractions), Unix
/// milliseconds, RFC 3339, or JSON with one of those under `ts`/`at`/`timestamp`/`time`.
fn stamp_age(value: &str) -> Option<Duration> {
    let v = value.trim();
    let at: DateTime<Utc> = if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        t.with_timezone(&Utc)
    } else if let Ok(json @ Value::Object(_)) = serde_json::from_str::<Value>(v) {
        let field = ["ts", "at", "timestamp", "time"]
            .iter()
            .find_map(|k| json.get(k).cloned())?;
        return match field {
            Value::String(s) => stamp_age(&s),
            Value::Number(n) => stamp_age(&n.to_string()),
            _ => None,
        };
    } else {
        let (int, frac) = v.split_once('.').unwrap_or((v, ""));
        let whole: i64 = int.parse().ok()?;
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let millis_frac: i64 = format!("{frac:0<3}")[..3].parse().unwrap_or(0);
        // Seconds until the year 5138; beyond that, milliseconds.
        if whole > 100_000_000_000 {
            DateTime::from_timestamp_millis(whole)?
        } else {
            DateTime::from_timestamp_millis(whole.checked_mul(1000)?.checked_add(millis_frac)?)?
        }
    };
    Some(
        Utc::now()
            .signed_duration_since(at)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// A minimal RESP client: (AUTH), (SELECT), GET key.
async fn redis_get(
    addr: &str,
    password: Option<&str>,
    db: u32,
    key: &str,
) -> Result<Option<String>, String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut request = Vec::new();
    let mut command = |parts: &[&str]| {
        request.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
        for p in parts {
            request.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
            request.extend_from_slice(p.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
    };
    let mut replies = 1;
    if let Some(pw) = password {
        command(&["AUTH", pw]);
        replies += 1;
    }
    if db != 0 {
        command(&["SELECT", &db.to_string()]);
        replies += 1;
    }
    command(&["GET", key]);
    stream
        .write_all(&request)
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(parsed) = parse_replies(&buf, replies)? {
            return Ok(parsed);
        }
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 1 << 20 {
            return Err("reply too large".into());
        }
    }
}

/// `Ok(None)` until `count` replies are complete; then the last one (a bulk string or nil).
fn parse_replies(buf: &[u8], count: usize) -> Result<Option<Option<String>>, String> {
    let mut pos = 0;
    let mut last = None;
    for _ in 0..count {
        let Some(end) = find_crlf(buf, pos) else {
            return Ok(None);
        };
        let head = String::from_utf8_lossy(&buf[pos..end]).to_string();
        pos = end + 2;
        match head.as_bytes().first() {
            Some(b'+') | Some(b':') => last = None,
            Some(b'-') => return Err(head[1..].to_string()),
            Some(b'$') => {
                let len: i64 = head[1..].parse().map_err(|_| "bad reply".to_string())?;
                if len < 0 {
                    last = None;
                } else {
                    let len = len as usize;
                    if buf.len() < pos + len + 2 {
                        return Ok(None);
                    }
                    last = Some(String::from_utf8_lossy(&buf[pos..pos + len]).to_string());
                    pos += len + 2;
                }
            }
            _ => return Err(format!("unexpected reply {head:?}")),
        }
    }
    Ok(Some(last))
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| i + from)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn resp_replies() {
        assert_eq!(
            parse_replies(b"$5\r\nhello\r\n", 1).unwrap(),
            Some(Some("hello".into()))
        );
        assert_eq!(parse_replies(b"$-1\r\n", 1).unwrap(), Some(None));
        assert_eq!(parse_replies(b"$5\r\nhel", 1).unwrap(), None);
        assert_eq!(
            parse_replies(b"+OK\r\n$2\r\nhi\r\n", 2).unwrap(),
            Some(Some("hi".into()))
        );
        assert!(parse_replies(b"-WRONGPASS bad\r\n$2\r\nhi\r\n", 2).is_err());
    }

    #[test]
    fn heartbeat_values_that_hold_a_time() {
        let now = Utc::now();
        let secs = format!("{}.5", now.timestamp() - 10);
        let age = stamp_age(&secs).unwrap();
        assert!(
            age >= Duration::from_millis(9000) && age <= Duration::from_millis(11000),
            "{age:?}"
        );
        let whole = (now.timestamp() - 5).to_string();
        let age = stamp_age(&whole).unwrap();
        assert!(
            age >= Duration::from_secs(4) && age <= Duration::from_secs(7),
            "{age:?}"
        );
        let ms = (now.timestamp_millis() - 2000).to_string();
        assert!(stamp_age(&ms).unwrap() >= Duration::from_millis(1900));
        let json = format!("{{\"ts\": {}}}", now.timestamp());
        assert!(stamp_age(&json).unwrap() < Duration::from_secs(2));
        assert!(stamp_age(&now.to_rfc3339()).unwrap() < Duration::from_secs(2));
        assert_eq!(stamp_age("alive"), None);
    }
}
