//! Connection hygiene against the real binary, over raw sockets: a head or body that never
//! finishes is cut off, an idle keep-alive connection is closed, an oversized declared body is
//! refused before it is sent (no `100 Continue`), heads too large and bad path segments get
//! the JSON envelope, and connections beyond the cap wait until one closes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::Engine;

const CONFIG: &str = "[server]\nheader_timeout = \"1s\"\nbody_timeout = \"1s\"\nmax_connections = 2\n[trading]\nsynthetic_feed = false\n";

fn connect(e: &Engine) -> TcpStream {
    let addr = e.url().trim_start_matches("http://");
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Everything the server sends until it closes the connection.
fn read_to_close(s: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    String::from_utf8_lossy(&all).into_owned()
}

/// One response (head and a `Content-Length` body) off a kept-alive connection.
fn read_response(s: &mut TcpStream) -> (u16, Value) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed mid-head: {buf:?}");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let status: u16 = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn status_and_body(text: &str) -> (u16, Value) {
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn slow_heads_stalled_bodies_and_idle_connections_are_cut_off() {
    let e = Engine::start(Some(CONFIG));

    // A head that never ends: closed without an answer once the header timeout passes.
    let mut slow = connect(&e);
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let started = Instant::now();
    assert_eq!(read_to_close(&mut slow), "");
    assert!(started.elapsed() < Duration::from_secs(15));

    // A body that stalls: 408 in the envelope.
    let mut stalled = connect(&e);
    stalled
        .write_all(b"POST /api/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"sym")
        .unwrap();
    let (status, body) = read_response(&mut stalled);
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["error"]["code"], "request_timeout");

    // A kept-alive connection that goes quiet after its answer is closed.
    let mut idle = connect(&e);
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle).0, 200);
    assert_eq!(read_to_close(&mut idle), "", "closed with nothing more");
}

#[test]
fn oversized_and_malformed_requests_get_the_json_envelope() {
    let e = Engine::start(Some(CONFIG));

    // A declared body over the limit is refused at once, and `Expect: 100-continue` gets the
    // refusal instead of `100 Continue`.
    let mut big = connect(&e);
    big.write_all(b"POST /api/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 10000000000\r\n\r\n")
        .unwrap();
    let (status, body) = read_response(&mut big);
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "body_too_large");

    let long = format!(
        "GET /api/orders?symbol={} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        "A".repeat(9000)
    );
    let mut s = connect(&e);
    s.write_all(long.as_bytes()).unwrap();
    let (status, body) = status_and_body(&read_to_close(&mut s));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (414, Some("uri_too_long"))
    );

    let mut many = String::from("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for i in 0..120 {
        many.push_str(&format!("X-Filler-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let mut s = connect(&e);
    s.write_all(many.as_bytes()).unwrap();
    let (status, body) = status_and_body(&read_to_close(&mut s));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (431, Some("headers_too_large"))
    );

    let mut s = connect(&e);
    s.write_all(b"GET /api/orders/%FF%FE HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (status, body) = status_and_body(&read_to_close(&mut s));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_path"))
    );
}

#[test]
fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let e = Engine::start(Some(
        "[server]\nheader_timeout = \"30s\"\nmax_connections = 2\n[trading]\nsynthetic_feed = false\n",
    ));
    let request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let mut first = connect(&e);
    first.write_all(request).unwrap();
    assert_eq!(read_response(&mut first).0, 200);
    let mut second = connect(&e);
    second.write_all(request).unwrap();
    assert_eq!(read_response(&mut second).0, 200);

    // Both slots are held by idle keep-alive connections: the third is not served...
    let mut third = connect(&e);
    third.write_all(request).unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut byte = [0u8; 1];
    let waited = third.read(&mut byte);
    assert!(
        matches!(&waited, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the third connection was served while two were open: {waited:?}"
    );
    // ...until one closes.
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(read_response(&mut third).0, 200);
}
