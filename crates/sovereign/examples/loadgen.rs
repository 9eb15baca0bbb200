//! Load generator for the running binary (benchmarks in docs/benchmarks.md).
//!
//! - `loadgen rate URL --rate 1000 --secs 300`: open-loop POSTs to `URL` at a fixed rate (a request
//!   is sent on schedule whether or not earlier ones have answered) and prints the latency
//!   distribution. Peak throughput is measured with `wrk` instead (scripts/bench-http.sh).
//! - `loadgen startup BIN`: starts `BIN up --port 0` on a fresh data dir, times the first
//!   `GET /health` 200, then reports idle RSS after a few seconds (anonymous and file-backed).
//! - `loadgen scheduler URL --tasks 10000 --secs 30`: registers `--tasks` tasks due every second,
//!   then reads their results and reports the firing delay (start − scheduled instant) and the
//!   engine's CPU use.
//! - `loadgen alert BIN --count 500`: starts a webhook receiver on loopback and `BIN up` with a
//!   webhook alert channel pointing at it, raises `--count` P0 alerts one after another and
//!   reports raise → delivered latency (POST sent → the receiver has the body).
//! - `loadgen supervise BIN [--secs S]`: the supervisor: crash → restart latency beyond the
//!   backoff; 50 services with a dependency graph (start spread, order checked); 20 services with
//!   health checks idle for `--secs` (the engine's CPU share and RSS at start and end).
//! - `loadgen venue BIN [--count N]`: `BIN up` with a NinjaTrader gateway on a temporary folder,
//!   once with file notifications and once polling only (50 ms): TradingView-style signal posted
//!   → its order file renamed into `incoming` (seen by inotify), and an order state file renamed
//!   into `outgoing` → the fill on `/sse/fills`.
//! - `loadgen dashboard BIN [--count 50] [--secs 15]`: `BIN up` with prices at 10 ticks/s; the
//!   engine's CPU with no dashboards and with `--count` dashboards' streams open (the three a page
//!   holds), then the page's first contentful paint in a cold headless Chromium (10 loads, a
//!   fresh profile each, over chromedriver).
//! - `loadgen hold URL [--count 50] [--secs 20]`: hold `--count` dashboards' streams open on a
//!   running engine (to measure orders side by side with them).
//! - `loadgen deploy BIN [--runs 30]`: deploy plans on `BIN up`: a target whose P0 check fails
//!   at its first measurement, `--runs` times — the failing measurement → its rollback command
//!   running (the command prints the clock when it starts); 100 targets in one stage with
//!   `parallelism = 20` and `sleep 0.1` as the deploy command — the stage's time beyond the
//!   commands' own; the engine's CPU idle for 15 s with three plans configured and with none.
//!
//! Talks only to the URL it is given (loopback in every script); every loop is bounded.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn usage() -> ! {
    eprintln!("usage: loadgen rate URL [--rate N] [--secs S] [--body JSON]\n       loadgen startup BIN\n       loadgen scheduler URL [--tasks N] [--secs S] [--pid PID]\n       loadgen alert BIN [--count N]\n       loadgen supervise BIN [--secs S]\n       loadgen venue BIN [--count N]\n       loadgen dashboard BIN [--count N] [--secs S]\n       loadgen hold URL [--count N] [--secs S]\n       loadgen deploy BIN [--runs N]");
    std::process::exit(2)
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    match args.first().map(String::as_str) {
        Some("rate") => rt.block_on(rate(&args)),
        Some("startup") => startup(&args),
        Some("scheduler") => rt.block_on(scheduler(&args)),
        Some("alert") => rt.block_on(alert(&args)),
        Some("supervise") => rt.block_on(supervise(&args)),
        Some("venue") => rt.block_on(venue(&args)),
        Some("dashboard") => rt.block_on(dashboard(&args)),
        Some("hold") => rt.block_on(hold(&args)),
        Some("deploy") => rt.block_on(deploy(&args)),
        _ => usage(),
    }
}

fn percentiles(label: &str, mut us: Vec<u64>) {
    if us.is_empty() {
        println!("{label}: no samples");
        return;
    }
    us.sort_unstable();
    let p = |q: f64| us[((us.len() as f64 * q) as usize).min(us.len() - 1)] as f64 / 1000.0;
    println!(
        "{label}: n={} p50={:.3}ms p90={:.3}ms p99={:.3}ms p99.9={:.3}ms max={:.3}ms",
        us.len(),
        p(0.50),
        p(0.90),
        p(0.99),
        p(0.999),
        *us.last().unwrap() as f64 / 1000.0
    );
}

async fn rate(args: &[String]) {
    let url = args.get(1).cloned().unwrap_or_else(|| usage());
    let rate: u64 = flag(args, "--rate")
        .map(|r| r.parse().unwrap())
        .unwrap_or(1000);
    let secs: u64 = flag(args, "--secs")
        .map(|r| r.parse().unwrap())
        .unwrap_or(10);
    let body = flag(args, "--body").unwrap_or_else(|| {
        r#"{"source":"bench","event":"tick","data":{"symbol":"ES","price":"5000.25"}}"#.into()
    });
    let client = reqwest::Client::new();
    let lat = Arc::new(Mutex::new(Vec::with_capacity((rate * secs) as usize)));
    let errors = Arc::new(Mutex::new(0u64));
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = rate * secs;
    let mut handles = Vec::with_capacity(total as usize);
    for _ in 0..total {
        tick.tick().await;
        let (client, url, body, lat, errors) = (
            client.clone(),
            url.clone(),
            body.clone(),
            lat.clone(),
            errors.clone(),
        );
        handles.push(tokio::spawn(async move {
            let t = Instant::now();
            let ok = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            let us = t.elapsed().as_micros() as u64;
            if ok {
                lat.lock().unwrap().push(us);
            } else {
                *errors.lock().unwrap() += 1;
            }
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    let samples = std::mem::take(&mut *lat.lock().unwrap());
    println!(
        "rate={rate}/s secs={secs} errors={}",
        errors.lock().unwrap()
    );
    percentiles("latency", samples);
}

fn rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS:")
}

/// One `… kB` field of `/proc/PID/status` (`VmRSS:`, `RssAnon:`, `RssFile:`).
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    // fields after the name: state(0) ... utime(11) stime(12)
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn startup(args: &[String]) {
    use std::io::{BufRead, Read, Write};
    let bin = args.get(1).cloned().unwrap_or_else(|| usage());
    let runs = 10;
    let mut times = Vec::new();
    let mut rss = Vec::new();
    for run in 0..runs {
        let dir =
            std::env::temp_dir().join(format!("sovereign-startup-{}-{run}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let t = Instant::now();
        let mut child = std::process::Command::new(&bin)
            .args(["up", "--port", "0", "--data-dir"])
            .arg(&dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap()
            .to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = std::net::TcpStream::connect(&addr)
                .and_then(|mut s| {
                    s.write_all(
                        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                    )?;
                    let mut buf = String::new();
                    s.read_to_string(&mut buf)?;
                    Ok(buf.starts_with("HTTP/1.1 200"))
                })
                .unwrap_or(false);
            if ok || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        times.push(t.elapsed().as_micros() as u64);
        if run == 0 {
            std::thread::sleep(Duration::from_secs(5));
            let pid = child.id();
            rss.push((
                rss_kb(pid),
                status_kb(pid, "RssAnon:"),
                status_kb(pid, "RssFile:"),
            ));
        }
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }
    percentiles("spawn -> first /health 200", times);
    let (all, anon, file) = rss[0];
    println!(
        "idle RSS after 5 s: {all} KiB (anonymous: heap and stacks {anon} KiB; file-backed: the binary and libraries {file} KiB)"
    );
}

async fn scheduler(args: &[String]) {
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| usage())
        .trim_end_matches('/')
        .to_string();
    let tasks: usize = flag(args, "--tasks")
        .map(|r| r.parse().unwrap())
        .unwrap_or(10_000);
    let secs: u64 = flag(args, "--secs")
        .map(|r| r.parse().unwrap())
        .unwrap_or(30);
    let pid: Option<u32> = flag(args, "--pid").map(|p| p.parse().unwrap());
    let client = reqwest::Client::new();
    let t = Instant::now();
    let mut handles = Vec::new();
    for chunk in 0..(tasks / 100).max(1) {
        let client = client.clone();
        let url = url.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..100 {
                let id = format!("sched-{}", chunk * 100 + i);
                let body = json!({"task_id": id, "name": id, "handler": "log_signal",
                                  "payload": {"n": chunk * 100 + i}, "schedule": {"every": "1s"}});
                let r = client
                    .post(format!("{url}/register"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert!(
                    r.status().is_success() || r.status().as_u16() == 409,
                    "{}",
                    r.status()
                );
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    println!("registered {tasks} tasks in {:?}", t.elapsed());
    tokio::time::sleep(Duration::from_secs(3)).await; // let the anchors settle into the cycle
    let ticks_per_s = 100.0; // USER_HZ on Linux
    let cpu0 = pid.map(cpu_ticks);
    let wall0 = Instant::now();
    let mut delays = Vec::new();
    let windows = (secs / 5).max(1);
    for _ in 0..windows {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let v = get_json(&client, &format!("{url}/results?limit=10000")).await;
        for r in v["results"].as_array().unwrap() {
            if r["trigger"] != "schedule" {
                continue;
            }
            let due =
                chrono::DateTime::parse_from_rfc3339(r["scheduled_for"].as_str().unwrap()).unwrap();
            let started =
                chrono::DateTime::parse_from_rfc3339(r["started_at"].as_str().unwrap()).unwrap();
            delays.push((started - due).num_microseconds().unwrap().max(0) as u64);
        }
    }
    if let (Some(pid), Some(c0)) = (pid, cpu0) {
        let used = (cpu_ticks(pid) - c0) as f64 / ticks_per_s;
        let wall = wall0.elapsed().as_secs_f64();
        println!(
            "engine CPU: {:.1}% of one core over {:.0} s ({} fires/s)",
            100.0 * used / wall,
            wall,
            tasks
        );
    }
    percentiles("firing delay (start - due)", delays);
}

type Arrivals = Arc<Mutex<std::collections::HashMap<u64, Instant>>>;

async fn receive(
    axum::extract::State(seen): axum::extract::State<Arrivals>,
    body: axum::body::Bytes,
) -> &'static str {
    let at = Instant::now();
    if let Some(id) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["id"].as_u64())
    {
        seen.lock().unwrap().insert(id, at);
    }
    "ok"
}

async fn alert(args: &[String]) {
    let bin = args.get(1).cloned().unwrap_or_else(|| usage());
    let count: usize = flag(args, "--count")
        .map(|v| v.parse().unwrap())
        .unwrap_or(500);
    let seen: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let config = format!(
        "[notify]\ndedup_window = \"1s\"\n[notify.channels.hook]\nkind = \"webhook\"\nurl = \"http://{hook}/alerts\"\nrate_per = \"1ms\"\n"
    );
    let up = Up::start(&bin, "alert-bench", &config);
    let base = up.base.clone();
    let http = reqwest::Client::new();
    let mut latencies = Vec::new();
    let mut acks = Vec::new();
    for n in 0..count {
        let t = Instant::now();
        let resp: Value = http
            .post(format!("{base}/api/alerts"))
            .json(&json!({"priority": "P0", "source": "bench", "title": format!("bench {n}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        acks.push(t.elapsed().as_micros() as u64);
        let id = resp["id"].as_u64().expect("accepted");
        let deadline = Instant::now() + Duration::from_secs(10);
        let arrived = loop {
            if let Some(at) = seen.lock().unwrap().get(&id).copied() {
                break at;
            }
            assert!(Instant::now() < deadline, "alert {id} never arrived");
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        latencies.push(arrived.duration_since(t).as_micros() as u64);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    percentiles("POST /api/alerts -> 202 (durable in the outbox)", acks);
    percentiles("P0 raised -> delivered to the webhook receiver", latencies);
}

/// A running `BIN up` on a fresh dir with `config`; killed (SIGTERM) on drop.
struct Up {
    child: std::process::Child,
    base: String,
    dir: std::path::PathBuf,
}

impl Up {
    fn start(bin: &str, name: &str, config: &str) -> Up {
        let dir = std::env::temp_dir().join(format!("sovereign-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let mut child = std::process::Command::new(bin)
            .args(["up", "--port", "0", "--data-dir"])
            .arg(dir.join("data"))
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env("LOG_LEVEL", "WARN")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let base = format!(
            "http://{}",
            line.split("http://")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .unwrap()
        );
        Up { child, base, dir }
    }

    async fn services(&self) -> Vec<Value> {
        let v: Value = reqwest::get(format!("{}/api/services", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["services"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nanos(line: &str) -> Option<u64> {
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn supervise(args: &[String]) {
    let bin = args.get(1).cloned().unwrap_or_else(|| usage());
    let secs: u64 = flag(args, "--secs")
        .map(|v| v.parse().unwrap())
        .unwrap_or(60);
    let soak = args.iter().any(|a| a == "--soak");
    if !soak {
        crash_and_order(&bin).await;
    }
    idle(&bin, secs, soak).await;
}

async fn crash_and_order(bin: &str) {
    // 1. Crash → restart: the process notes when it starts and when it exits; the gap between
    //    an exit and the next start, minus the 100 ms backoff, is the supervisor's share.
    {
        let config = r#"
[services.crashy]
command = ["sh", "-c", "echo start $(date +%s%N) >> t; sleep 0.05; echo exit $(date +%s%N) >> t; exit 1"]
backoff = { initial = "100ms", max = "100ms" }
crash_loop = { restarts = 100000, window = "1s" }
"#;
        let up = Up::start(bin, "crash", config);
        tokio::time::sleep(Duration::from_secs(20)).await;
        let text = std::fs::read_to_string(up.dir.join("t")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let mut gaps = Vec::new();
        for pair in lines.windows(2) {
            if pair[0].starts_with("exit") && pair[1].starts_with("start") {
                if let (Some(e), Some(s)) = (nanos(pair[0]), nanos(pair[1])) {
                    gaps.push(s.saturating_sub(e).saturating_sub(100_000_000) / 1000);
                }
            }
        }
        percentiles(
            "crash -> next process running, beyond the 100 ms backoff",
            gaps,
        );
    }

    // 2. 50 services, each depending on another (a tree 6 levels deep, condition started).
    {
        let mut config = String::new();
        for i in 0..50 {
            config.push_str(&format!(
                "[services.s{i:02}]\ncommand = [\"sleep\", \"100000\"]\n"
            ));
            if i > 0 {
                config.push_str(&format!("depends_on = [\"s{:02}\"]\n", (i - 1) / 2));
            }
        }
        let t0 = chrono::Utc::now();
        let up = Up::start(bin, "fifty", &config);
        let deadline = Instant::now() + Duration::from_secs(30);
        let services = loop {
            let s = up.services().await;
            if s.iter().filter(|v| v["state"] == "running").count() == 50 {
                break s;
            }
            assert!(Instant::now() < deadline, "50 services did not all start");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let started = |name: &str| -> chrono::DateTime<chrono::Utc> {
            let s = services.iter().find(|v| v["name"] == name).unwrap();
            s["started_at"].as_str().unwrap().parse().unwrap()
        };
        for i in 1..50 {
            assert!(
                started(&format!("s{i:02}")) >= started(&format!("s{:02}", (i - 1) / 2)),
                "s{i:02} started before its dependency"
            );
        }
        let first = (0..50).map(|i| started(&format!("s{i:02}"))).min().unwrap();
        let last = (0..50).map(|i| started(&format!("s{i:02}"))).max().unwrap();
        println!(
            "50 services, 6 dependency levels: all running {} ms after the first started ({} ms after the command was run, process start-up included); order checked",
            (last - first).num_milliseconds(),
            (last - t0).num_milliseconds()
        );
    }
}

/// 20 services with health checks every second for `secs`: the engine's CPU share and its RSS
/// over time. With `soak`, a 21st service also prints 200 lines and crashes every second (spawns,
/// logs and their rotation, transitions on the audit trail), and RSS is sampled every minute.
async fn idle(bin: &str, secs: u64, soak: bool) {
    {
        let mut config = String::from(
            "[services.web]\ncommand = [\"python3\", \"-m\", \"http.server\", \"18777\", \"--bind\", \"127.0.0.1\"]\nhealth = { type = \"http\", url = \"http://127.0.0.1:18777/\", interval = \"1s\" }\n",
        );
        for i in 0..19 {
            config.push_str(&format!(
                "[services.w{i:02}]\ncommand = [\"sleep\", \"100000\"]\nhealth = {{ type = \"tcp\", addr = \"127.0.0.1:18777\", interval = \"1s\" }}\n"
            ));
        }
        if soak {
            config.push_str("[services.churn]\ncommand = [\"sh\", \"-c\", \"seq 1 200; sleep 1; exit 1\"]\nbackoff = { initial = \"10ms\", max = \"10ms\" }\ncrash_loop = { restarts = 1000000, window = \"1s\" }\nlog = { max_bytes = 65536, keep = 2 }\n");
        }
        let up = Up::start(bin, "idle", &config);
        tokio::time::sleep(Duration::from_secs(5)).await;
        let pid = up.child.id();
        let healthy = up
            .services()
            .await
            .iter()
            .filter(|v| v["state"] == "healthy")
            .count();
        let (cpu0, rss0, t) = (cpu_ticks(pid), rss_kb(pid), Instant::now());
        let mut samples = vec![rss0];
        let every = if soak { 60 } else { 10 };
        for _ in 0..secs.div_ceil(every) {
            tokio::time::sleep(Duration::from_secs(every)).await;
            samples.push(rss_kb(pid));
        }
        let ticks = cpu_ticks(pid) - cpu0;
        let elapsed = t.elapsed().as_secs_f64();
        println!(
            "20 services with health checks every 1 s ({healthy} healthy){}, {:.0} s: engine CPU {:.2} % of one core; RSS KiB every {every} s: {:?}",
            if soak { " + one crashing every second" } else { ", idle" },
            elapsed,
            ticks as f64 / 100.0 / elapsed * 100.0,
            samples
        );
    }
}

async fn venue(args: &[String]) {
    let bin = args.get(1).cloned().unwrap_or_else(|| usage());
    let count: usize = flag(args, "--count")
        .map(|v| v.parse().unwrap())
        .unwrap_or(300);
    for notifications in [true, false] {
        let config = format!(
            "[trading]\nsynthetic_feed = false\n[trading.accounts.live]\nstarting_cash = \"10000000\"\n\
             [trading.gateways.nt]\nkind = \"ninjatrader\"\naccount = \"live\"\nvenue_account = \"Sim101\"\n\
             dir = \"nt\"\ninstruments = {{ ES = \"ES 03-27\" }}\npoll = \"50ms\"\nnotifications = {notifications}\n\
             [signals.tv]\nsecret = \"tv-secret-123\"\naccount = \"live\"\nsymbols = {{ \"ES1!\" = \"ES\" }}\n"
        );
        let up = Up::start(&bin, &format!("venue-{notifications}"), &config);
        let base = up.base.clone();
        let nt = up.dir.join("nt");
        let http = reqwest::Client::new();
        http.post(format!("{base}/api/market/ticks"))
            .json(&json!([{"symbol": "ES", "price": "5000", "bid": "4999.75", "ask": "5000.25"}]))
            .send()
            .await
            .unwrap();

        // Order files arriving in incoming, as NinjaTrader would see them.
        let (arrived, arrivals) = std::sync::mpsc::channel::<(Instant, std::path::PathBuf)>();
        let mut watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
            if let Ok(e) = e {
                let at = Instant::now();
                for p in e.paths {
                    if p.extension().is_some_and(|x| x == "txt") {
                        let _ = arrived.send((at, p));
                    }
                }
            }
        })
        .unwrap();
        notify::Watcher::watch(
            &mut watcher,
            &nt.join("incoming"),
            notify::RecursiveMode::NonRecursive,
        )
        .unwrap();

        let mut to_file = Vec::new();
        let mut ids = Vec::new();
        for i in 0..count {
            while arrivals.try_recv().is_ok() {}
            let t = Instant::now();
            let answer: Value = http
                .post(format!("{base}/api/signals/tv"))
                .json(&json!({"ticker": "ES1!", "action": if i % 2 == 0 { "buy" } else { "sell" }, "contracts": 1, "secret": "tv-secret-123", "id": format!("b{i}")}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            ids.push(
                answer["orders"][0]["id"]
                    .as_str()
                    .expect("an order")
                    .to_string(),
            );
            let (at, path) = loop {
                let (at, path) = arrivals
                    .recv_timeout(Duration::from_secs(5))
                    .expect("an order file");
                if path.exists() {
                    break (at, path);
                }
            };
            to_file.push(at.duration_since(t).as_micros() as u64);
            let _ = std::fs::remove_file(path);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(watcher);

        // Fills on the stream, by order id.
        let (fill_tx, mut fills) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
        let mut stream = http.get(format!("{base}/sse/fills")).send().await.unwrap();
        tokio::spawn(async move {
            let mut pending = String::new();
            while let Ok(Some(chunk)) = stream.chunk().await {
                let at = Instant::now();
                pending.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = pending.find('\n') {
                    let line: String = pending.drain(..=end).collect();
                    if let Some(data) = line.trim().strip_prefix("data:") {
                        if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                            if let Some(id) = v["order_id"].as_str() {
                                let _ = fill_tx.send((id.to_string(), at));
                            }
                        }
                    }
                }
            }
        });
        // NinjaTrader makes outgoing; the engine starts watching it once it is there.
        std::fs::create_dir_all(nt.join("outgoing")).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut to_fill = Vec::new();
        for id in &ids {
            let staged = nt.join(format!("sov-{id}.tmp"));
            std::fs::write(&staged, "FILLED;1;5000.25\r\n").unwrap();
            let t = Instant::now();
            std::fs::rename(&staged, nt.join("outgoing").join(format!("sov-{id}.txt"))).unwrap();
            let at = loop {
                let (got, at) = tokio::time::timeout(Duration::from_secs(5), fills.recv())
                    .await
                    .expect("a fill on the stream")
                    .unwrap();
                if &got == id {
                    break at;
                }
            };
            to_fill.push(at.duration_since(t).as_micros() as u64);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        let mode = if notifications {
            "notifications + 50 ms poll"
        } else {
            "50 ms poll only"
        };
        percentiles(
            &format!("[{mode}] signal posted -> order file renamed into incoming"),
            to_file,
        );
        percentiles(
            &format!("[{mode}] order state file in outgoing -> fill on /sse/fills"),
            to_fill,
        );
    }
}

/// The streams one dashboard page holds open, as it opens them.
const PAGE_STREAMS: [&str; 2] = ["/sse/trading?every=250ms", "/sse/services"];

/// Open `count` pages' streams on `base` and read them until the process ends; the bytes read.
fn open_dashboards(base: &str, count: usize) -> Arc<std::sync::atomic::AtomicU64> {
    let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let http = reqwest::Client::new();
    for _ in 0..count {
        for path in PAGE_STREAMS {
            let (http, url, read) = (http.clone(), format!("{base}{path}"), read.clone());
            tokio::spawn(async move {
                let Ok(mut resp) = http.get(url).send().await else {
                    return;
                };
                while let Ok(Some(chunk)) = resp.chunk().await {
                    read.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    }
    read
}

/// The engine's CPU use over `secs`, in % of one core.
async fn cpu_share(pid: u32, secs: u64) -> f64 {
    let (c0, t) = (cpu_ticks(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    100.0 * (cpu_ticks(pid) - c0) as f64 / 100.0 / t.elapsed().as_secs_f64()
}

async fn hold(args: &[String]) {
    let url = args.get(1).cloned().unwrap_or_else(|| usage());
    let count: usize = flag(args, "--count")
        .map(|v| v.parse().unwrap())
        .unwrap_or(50);
    let secs: u64 = flag(args, "--secs")
        .map(|v| v.parse().unwrap())
        .unwrap_or(20);
    let read = open_dashboards(&url, count);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    println!(
        "{count} dashboards held {secs} s: {} bytes streamed",
        read.load(std::sync::atomic::Ordering::Relaxed)
    );
}

async fn dashboard(args: &[String]) {
    let bin = args.get(1).cloned().unwrap_or_else(|| usage());
    let count: usize = flag(args, "--count")
        .map(|v| v.parse().unwrap())
        .unwrap_or(50);
    let secs: u64 = flag(args, "--secs")
        .map(|v| v.parse().unwrap())
        .unwrap_or(15);
    let up = Up::start(&bin, "dashboard", "[trading]\nfeed_interval = \"100ms\"\n");
    let pid = up.child.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let alone = cpu_share(pid, secs).await;
    let read = open_dashboards(&up.base, count);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let with = cpu_share(pid, secs).await;
    println!(
        "engine CPU with prices at 10 ticks/s: {alone:.2} % of one core alone, {with:.2} % with {count} dashboards open ({:.2} % for the dashboards; {} bytes streamed)",
        with - alone,
        read.load(std::sync::atomic::Ordering::Relaxed)
    );
    first_paint(&up.base, 10).await;
}

/// First contentful paint of the page in a cold headless Chromium, `runs` times.
async fn first_paint(base: &str, runs: usize) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut driver = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver (apt-get install chromium chromium-driver)");
    let wd = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http.get(format!("{wd}/status")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut paints = Vec::new();
    for run in 0..runs {
        let profile =
            std::env::temp_dir().join(format!("sovereign-paint-{}-{run}", std::process::id()));
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800", format!("--user-data-dir={}", profile.display())]}}}});
        let v: Value = http
            .post(format!("{wd}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .expect("a session")
            .to_string();
        let at = |p: &str| format!("{wd}/session/{session}{p}");
        http.post(at("/url"))
            .json(&json!({"url": base}))
            .send()
            .await
            .unwrap();
        let mut fcp = None;
        for _ in 0..200 {
            let v: Value = http
                .post(at("/execute/sync"))
                .json(&json!({"script": "const p = performance.getEntriesByName('first-contentful-paint')[0]; return p ? p.startTime : null;", "args": []}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(ms) = v["value"].as_f64() {
                fcp = Some(ms);
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        paints.push((fcp.expect("a first contentful paint") * 1000.0) as u64);
        let _ = http.delete(at("")).send().await;
        let _ = std::fs::remove_dir_all(profile);
    }
    let _ = driver.kill();
    let _ = driver.wait();
    percentiles(
        "first contentful paint of / (navigation start -> paint), cold profile",
        paints,
    );
}

/// Start a run of `plan` on `base` and wait for its end; its history entry.
async fn deploy_once(http: &reqwest::Client, base: &str, plan: &str, version: &str) -> Value {
    let run: Value = http
        .post(format!("{base}/api/v1/deploy/run"))
        .json(&json!({"plan": plan, "version": version}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = run["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no run: {run}"));
    for _ in 0..6000 {
        let h = get_json(
            http,
            &format!("{base}/api/v1/deploy/history?limit=5&plan={plan}"),
        )
        .await;
        if let Some(r) = h["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["id"] == id && !r["ended_at"].is_null())
        {
            return r.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("run {id} did not end");
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

fn rfc3339_us(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
        .map(|t| t.timestamp_micros())
        .unwrap_or(0)
}

async fn deploy(args: &[String]) {
    let bin = args.get(1).cloned().unwrap_or_else(|| usage());
    let runs: usize = flag(args, "--runs")
        .map(|v| v.parse().unwrap())
        .unwrap_or(30);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Nothing listens on `closed`: the check fails at its first measurement (P0).
    let mut config = format!(
        r#"
[deploy.plans.p0]
[[deploy.plans.p0.stages]]
name = "canary"
[[deploy.plans.p0.stages.targets]]
name = "a"
deploy = ["true"]
rollback = ["date", "+%s%6N"]
[[deploy.plans.p0.stages.targets.checks]]
kind = "tcp"
address = "127.0.0.1:{closed}"
interval = "10ms"

[deploy.plans.wide]
[[deploy.plans.wide.stages]]
name = "all"
parallelism = 20
"#
    );
    for i in 0..100 {
        config.push_str(&format!(
            "[[deploy.plans.wide.stages.targets]]\nname = \"t{i}\"\ndeploy = [\"sleep\", \"0.1\"]\nrollback = [\"true\"]\n"
        ));
    }
    config.push_str("\n[deploy.plans.idle]\n[[deploy.plans.idle.stages]]\nname = \"s\"\n[[deploy.plans.idle.stages.targets]]\nname = \"x\"\ndeploy = [\"true\"]\nrollback = [\"true\"]\n");
    let up = Up::start(&bin, "deploy", &config);
    let http = reqwest::Client::new();
    let pid = up.child.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_with = cpu_share(pid, 15).await;

    let mut reaction = Vec::new();
    for i in 0..runs {
        let r = deploy_once(&http, &up.base, "p0", &format!("v{i}")).await;
        assert_eq!(r["outcome"], "rolled_back", "{r}");
        let canary = &r["stages"][0];
        let failed_at = rfc3339_us(&canary["checks"][0]["measurements"][0]["at"]);
        // The rollback's own output: the clock when it started, in microseconds.
        let started = rollback_started(&http, &up.base, r["id"].as_u64().unwrap()).await;
        reaction.push((started - failed_at).max(0) as u64);
    }
    percentiles("P0 check failure -> rollback command running", reaction);

    let mut overheads = Vec::new();
    for i in 0..3 {
        let r = deploy_once(&http, &up.base, "wide", &format!("w{i}")).await;
        assert_eq!(r["outcome"], "succeeded", "{r}");
        let stage = &r["stages"][0];
        let stage_ms = stage["duration_ms"].as_u64().unwrap();
        let durations = command_durations(&http, &up.base, r["id"].as_u64().unwrap()).await;
        let mean = durations.iter().sum::<u64>() as f64 / durations.len().max(1) as f64;
        let own = mean * (100.0 / 20.0_f64).ceil();
        println!(
            "100 targets, parallelism 20: stage {stage_ms} ms; commands {:.1} ms each on average ({} of them), 5 waves = {own:.0} ms; engine overhead {:.0} ms",
            mean,
            durations.len(),
            stage_ms as f64 - own
        );
        overheads.push(stage_ms as f64 - own);
    }
    drop(up);
    let none = Up::start(&bin, "deploy-none", "");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_without = cpu_share(none.child.id(), 15).await;
    println!(
        "engine CPU idle over 15 s: {idle_with:.2} % of one core with three plans, {idle_without:.2} % with none"
    );
}

/// The rollback command's output of run `id` (its start, microseconds since the epoch).
async fn rollback_started(http: &reqwest::Client, base: &str, id: u64) -> i64 {
    command_records(http, base, id)
        .await
        .iter()
        .find(|r| r["action"] == "rollback" && r["started"].is_null())
        .and_then(|r| r["stdout"].as_str())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rollback output for run {id}"))
}

/// How long each deploy command of run `id` took, in milliseconds.
async fn command_durations(http: &reqwest::Client, base: &str, id: u64) -> Vec<u64> {
    command_records(http, base, id)
        .await
        .iter()
        .filter(|r| r["action"] == "deploy" && r["started"].is_null())
        .filter_map(|r| r["duration_ms"].as_u64())
        .collect()
}

/// The `command` events of run `id`, from its journal.
async fn command_records(http: &reqwest::Client, base: &str, id: u64) -> Vec<Value> {
    let run = get_json(http, &format!("{base}/api/v1/deploy/runs/{id}")).await;
    run["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "command")
        .map(|e| e["body"].clone())
        .collect()
}
