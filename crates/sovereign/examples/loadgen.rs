//! Load generator for the running binary (benchmarks in docs/benchmarks.md).
//!
//! - `loadgen rate URL --rate 1000 --secs 300`: open-loop POSTs to `URL` at a fixed rate (a request
//!   is sent on schedule whether or not earlier ones have answered) and prints the latency
//!   distribution. Peak throughput is measured with `wrk` instead (scripts/bench-http.sh).
//! - `loadgen startup BIN`: starts `BIN up --port 0` on a fresh data dir, times the first
//!   `GET /health` 200, then reports idle RSS after a few seconds.
//! - `loadgen scheduler URL --tasks 10000 --secs 30`: registers `--tasks` tasks due every second,
//!   then reads their results and reports the firing delay (start − scheduled instant) and the
//!   engine's CPU use.
//! - `loadgen alert BIN --count 500`: starts a webhook receiver on loopback and `BIN up` with a
//!   webhook alert channel pointing at it, raises `--count` P0 alerts one after another and
//!   reports raise → delivered latency (POST sent → the receiver has the body).
//!
//! Talks only to the URL it is given (loopback in every script); every loop is bounded.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn usage() -> ! {
    eprintln!("usage: loadgen rate URL [--rate N] [--secs S] [--body JSON]\n       loadgen startup BIN\n       loadgen scheduler URL [--tasks N] [--secs S] [--pid PID]\n       loadgen alert BIN [--count N]");
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
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
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
                    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
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
            rss.push(rss_kb(child.id()));
        }
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }
    percentiles("spawn -> first /health 200", times);
    println!("idle RSS after 5 s: {} KiB", rss[0]);
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
        let v: Value = client
            .get(format!("{url}/results?limit=10000"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
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

    let dir = std::env::temp_dir().join(format!("sovereign-alert-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[notify]\ndedup_window = \"1s\"\n[notify.channels.hook]\nkind = \"webhook\"\nurl = \"http://{hook}/alerts\"\nrate_per = \"1ms\"\n"
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(&bin)
        .args(["up", "--port", "0", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config)
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
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
