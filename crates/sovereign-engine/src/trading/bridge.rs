//! The broker-bridge ("webhook") gateway: an account's orders go out as one JSON POST each to a
//! configured URL, and the bridge's reports come back through `POST /api/gateways/{name}/reports`.
//!
//! - Out: [`render`] shapes the body from the order (a default shape, or the configured field
//!   templates such as TradersPost's), [`sign`] signs it, [`deliver`] posts it with the same
//!   `Idempotency-Key` on every attempt and retries only what may succeed later (5xx, timeouts,
//!   connection errors).
//! - In: [`parse_reports`] reads a report body into venue reports, all or nothing.
//!
//! Numbers stay exact end to end (no `f64`); nothing here logs the secret or the values of the
//! configured headers, and nothing decides what a report does to an order: the OMS does.

use std::time::Duration;

use serde_json::{json, Map, Number, Value};
use sovereign_core::error::Invalid;
use sovereign_core::notify::truncate_chars;
use sovereign_core::retry::Backoff;
use sovereign_core::template::render_value;
use sovereign_core::trading::fixed::{Fixed, Money, Price, Qty};
use sovereign_core::trading::oms::VenueReport;
use sovereign_core::trading::order::Order;
use sovereign_core::webhook::{constant_time_eq, sign_hmac};

use super::ninjatrader::venue_id;
use super::settings::BridgeSettings;
use super::{Durable, Sent};
use crate::support::{error_chain, Tasks};

/// The request headers' names.
pub const SIGNATURE_HEADER: &str = "X-Sovereign-Signature";
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// What is asked of the bridge: `buy`/`sell` (a new order), `cancel` or `change`.
pub fn context(order: &Order, venue_account: &str, action: &str) -> Value {
    let r = &order.request;
    // Decimals as JSON numbers with their exact digits (never through f64).
    let number = |text: String| {
        text.parse::<Number>()
            .map_or(Value::String(text.clone()), Value::Number)
    };
    json!({
        "order_id": venue_id(order.id),
        "client_order_id": r.client_order_id,
        "account": r.account,
        "venue_account": venue_account,
        "symbol": r.symbol.as_str(),
        "side": r.side.as_str(),
        "action": action,
        "qty": number(r.qty.to_string()),
        "type": r.order_type.as_str(),
        "limit_price": r.limit_price.map(|p| number(p.to_string())),
        "stop_price": r.stop_price.map(|p| number(p.to_string())),
        "tif": r.tif.as_str(),
    })
}

/// The body when no fields are configured.
const DEFAULT_SHAPE: [(&str, &str); 11] = [
    ("order_id", "order_id"),
    ("client_order_id", "client_order_id"),
    ("account", "venue_account"),
    ("action", "action"),
    ("symbol", "symbol"),
    ("side", "side"),
    ("qty", "qty"),
    ("type", "type"),
    ("limit_price", "limit_price"),
    ("stop_price", "stop_price"),
    ("tif", "tif"),
];

/// The JSON body for an order: each field's `{{placeholder}}` template rendered over
/// [`context`], or the default shape when `fields` is empty. A field that is exactly one
/// placeholder keeps its JSON type (a number stays a number, exact) and is left out when the
/// order has no value for it (the limit price of a market order).
pub fn render(ctx: &Value, fields: &[(String, String)]) -> Value {
    let mut body = Map::new();
    let mut put = |key: &str, template: String| {
        // Settings checked every template against the same context: nothing is missing.
        if let Ok(v) = render_value(&Value::String(template), ctx) {
            if !v.is_null() {
                body.insert(key.to_string(), v);
            }
        }
    };
    if fields.is_empty() {
        for (key, name) in DEFAULT_SHAPE {
            put(key, format!("{{{{{name}}}}}"));
        }
    } else {
        for (key, template) in fields {
            put(key, template.clone());
        }
    }
    Value::Object(body)
}

/// `sha256=<lowercase hex HMAC-SHA256(secret, body)>`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", sign_hmac(secret, body))
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A 2xx answer: the bridge has the order.
    Accepted,
    /// The order is not at the venue (as far as the engine can know): `bridge_refused` (4xx,
    /// a redirect or a request that cannot be made), `bridge_unavailable` (5xx, timeouts or
    /// connection errors after every retry), `bridge_stopped` (the engine stopped first).
    Rejected { code: &'static str, reason: String },
}

fn rejected(code: &'static str, reason: impl Into<String>) -> Delivery {
    Delivery::Rejected {
        code,
        reason: reason.into(),
    }
}

/// At most 200 characters of an answer's body, on one line (reads at most ~800 bytes).
async fn excerpt(resp: &mut reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < 800 {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text: String = String::from_utf8_lossy(&buf)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate_chars(text.trim(), 200)
}

/// One attempt: how the delivery ended, or `Err(why it failed)` when another may succeed.
async fn attempt(req: reqwest::RequestBuilder) -> Result<Delivery, String> {
    let mut resp = match req.send().await {
        Ok(resp) => resp,
        Err(e) if e.is_builder() || e.is_redirect() => {
            let why = error_chain(&e.without_url());
            return Ok(rejected("bridge_refused", format!("cannot post: {why}")));
        }
        Err(e) => return Err(error_chain(&e.without_url())),
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(Delivery::Accepted);
    }
    if status.is_server_error() {
        return Err(format!("HTTP {status}"));
    }
    let body = excerpt(&mut resp).await;
    let mut reason = format!("the bridge refused the order: HTTP {status}");
    if status.is_redirection() {
        reason.push_str(" (redirects are not followed)");
    }
    if !body.is_empty() {
        reason = format!("{reason}: {body}");
    }
    Ok(rejected("bridge_refused", reason))
}

/// POST `body` to the bridge with its signature, `Idempotency-Key: key`
/// on every attempt and the extra headers; retry 5xx, timeouts and connection errors after
/// 100 ms, 200 ms, 400 ms … (at most 5 s) up to `s.retries` times. Returns `bridge_stopped` as
/// soon as `stop` resolves, also mid-attempt (the bridge may then have the order). The client
/// should not follow redirects (a followed 302 turns the POST into a GET).
pub async fn deliver(
    client: &reqwest::Client,
    s: &BridgeSettings,
    key: &str,
    body: &[u8],
    stop: impl std::future::Future<Output = ()>,
) -> Delivery {
    let mut stop = std::pin::pin!(stop);
    let signature = sign(&s.secret, body);
    let backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(5),
        multiplier: 2,
    };
    let mut retry = 0;
    loop {
        let mut req = client
            .post(s.url.as_str())
            .timeout(s.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_HEADER, key)
            .body(body.to_vec());
        req = req.header(SIGNATURE_HEADER, signature.as_str());
        for (name, value) in &s.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let last = tokio::select! {
            biased;
            () = &mut stop => return rejected(
                "bridge_stopped",
                "the engine stopped before the bridge answered; the bridge may have the order",
            ),
            outcome = attempt(req) => match outcome {
                Ok(done) => return done,
                Err(why) => why,
            },
        };
        if retry >= s.retries {
            return rejected(
                "bridge_unavailable",
                format!("no answer after {} attempt(s); the last: {last}", retry + 1),
            );
        }
        retry += 1;
        tracing::warn!(retry, of = s.retries, error = %last, "bridge delivery failed; retrying");
        tokio::select! {
            biased;
            () = &mut stop => return rejected(
                "bridge_stopped",
                format!("the engine stopped while retrying; the last attempt failed: {last}"),
            ),
            () = tokio::time::sleep(backoff.delay(retry)) => {}
        }
    }
}

/// Deliver each batch once its journal barrier is durable, one instruction at a time (a
/// cancel never overtakes the order it cancels), handing every outcome to `answered`.
pub(super) async fn sender(
    s: BridgeSettings,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<(Durable, Vec<Sent>)>,
    tasks: Tasks,
    answered: impl Fn(Sent, Delivery) -> bool + Send + 'static,
) {
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %error_chain(&e), "cannot build the bridge's HTTP client");
            return;
        }
    };
    while let Some((durable, batch)) = rx.recv().await {
        if durable.await.is_err() {
            tracing::error!("a bridge instruction was not sent: its journal write failed");
            continue;
        }
        for sent in batch {
            let delivery = deliver(
                &client,
                &s,
                &sent.key,
                sent.body.as_bytes(),
                tasks.stopped(),
            )
            .await;
            if !answered(sent, delivery) {
                return;
            }
        }
    }
}

/// Whether `signature` (`sha256=<hex>`) signs `body` under `secret`, in constant time.
pub fn verify(secret: &str, body: &[u8], signature: &str) -> bool {
    constant_time_eq(sign(secret, body).as_bytes(), signature.trim().as_bytes())
}

/// Which order a bridge report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderRef {
    /// From `sov-<id>` or a bare order number.
    Id(u64),
    /// The order's `client_order_id`.
    Client(String),
}

/// An error about the whole body or report (the caller adds the report's position).
fn whole(code: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        code,
        message: message.into(),
        field: None,
    }
}

fn missing(key: &str, what: &str) -> Invalid {
    Invalid::new("missing_field", key, format!("{what} needs {key}"))
}

/// A text field (a JSON number is taken as its text); empty or `null` is absent.
fn text(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, Invalid> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone()).filter(|s| !s.is_empty())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(Invalid::new("invalid_json", key, "must be a string")),
    }
}

/// A decimal given as a string or a JSON number, read from its digits.
fn decimal(obj: &Map<String, Value>, key: &str) -> Result<Option<Fixed>, Invalid> {
    let text = match obj.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    Fixed::parse(&text)
        .map(Some)
        .map_err(|e| Invalid::new("invalid_number", key, e.to_string()))
}

fn order_ref(obj: &Map<String, Value>) -> Result<OrderRef, Invalid> {
    // `order_id` wins: a bridge that echoes the default shape sends both.
    if let Some(id) = text(obj, "order_id")? {
        let digits = id.strip_prefix("sov-").unwrap_or(&id);
        return digits.parse().map(OrderRef::Id).map_err(|_| {
            Invalid::new(
                "invalid_order_id",
                "order_id",
                format!("{id:?} is not sov-<id> or an order number"),
            )
        });
    }
    match text(obj, "client_order_id")? {
        Some(client) => Ok(OrderRef::Client(client)),
        None => Err(missing("order_id", "a report without client_order_id")),
    }
}

fn report(v: &Value) -> Result<(OrderRef, VenueReport), Invalid> {
    let Some(obj) = v.as_object() else {
        return Err(whole("invalid_json", "a report must be a JSON object"));
    };
    let order = order_ref(obj)?;
    let kind = text(obj, "type")?.ok_or_else(|| missing("type", "a report"))?;
    let need = |key: &str| -> Result<Fixed, Invalid> {
        decimal(obj, key)?.ok_or_else(|| missing(key, "a fill"))
    };
    let report = match kind.to_ascii_lowercase().as_str() {
        "accepted" => VenueReport::Accepted,
        "fill" => VenueReport::Fill {
            exec_id: text(obj, "exec_id")?.ok_or_else(|| missing("exec_id", "a fill"))?,
            qty: Qty(need("qty")?),
            price: Price(need("price")?),
            commission: Money(decimal(obj, "commission")?.unwrap_or(Fixed::ZERO)),
        },
        "canceled" | "cancelled" => VenueReport::Canceled {
            reason: text(obj, "reason")?.unwrap_or_else(|| "canceled at the bridge".into()),
        },
        "rejected" => VenueReport::Rejected {
            code: text(obj, "code")?.unwrap_or_else(|| "venue_rejected".into()),
            reason: text(obj, "reason")?.unwrap_or_else(|| "rejected by the bridge".into()),
        },
        "expired" => VenueReport::Expired,
        _ => {
            return Err(Invalid::new(
                "invalid_report_type",
                "type",
                format!("{kind:?} is not accepted, fill, canceled, rejected or expired"),
            ))
        }
    };
    Ok((order, report))
}

/// Parse a report body: one report object or `{"reports": [...]}`. All or nothing: one bad
/// report fails the whole body, its field named like `reports[1].qty`.
pub fn parse_reports(body: &[u8]) -> Result<Vec<(OrderRef, VenueReport)>, Invalid> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| whole("invalid_json", format!("the body is not JSON: {e}")))?;
    match value.get("reports") {
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, r)| report(r).map_err(|e| e.within(&format!("reports[{i}]"))))
            .collect(),
        Some(_) => Err(Invalid::new("invalid_json", "reports", "must be an array")),
        None => Ok(vec![report(&value)?]),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::Utc;
    use sovereign_core::trading::instrument::Symbol;
    use sovereign_core::trading::order::{NewOrder, OrderType, Side, Tif};

    fn order(kind: OrderType, qty: &str, limit: Option<&str>, client: Option<&str>) -> Order {
        let price = |p: &str| Price::parse(p).unwrap();
        let request = NewOrder {
            account: "live".into(),
            symbol: Symbol::parse("ES").unwrap(),
            side: Side::Sell,
            qty: Qty::parse(qty).unwrap(),
            order_type: kind,
            limit_price: limit.map(price),
            stop_price: (kind == OrderType::StopLimit).then(|| price("4990.5")),
            tif: Tif::Gtc,
            client_order_id: client.map(Into::into),
        };
        Order::new(12, request, Utc::now())
    }

    /// `fields => expected`: the fields as a JSON object (`{}`: the default shape).
    const RENDER: &str = r#"
        market {} => {"order_id":"sov-12","account":"NT-1","action":"sell","symbol":"ES","side":"sell","qty":2,"type":"market","tif":"gtc"}
        limit {} => {"order_id":"sov-12","client_order_id":"c1","account":"NT-1","action":"sell","symbol":"ES","side":"sell","qty":12345678901.12345678,"type":"limit","limit_price":5000.25,"tif":"gtc"}
        market {"ticker":"{{symbol}}","action":"{{side}}","quantity":"{{qty}}","orderType":"{{type}}","limitPrice":"{{limit_price}}"} => {"ticker":"ES","action":"sell","quantity":2,"orderType":"market"}
        limit {"ticker":"{{symbol}}","action":"{{side}}","quantity":"{{ qty }}","orderType":"{{type}}","limitPrice":"{{limit_price}}"} => {"ticker":"ES","action":"sell","quantity":12345678901.12345678,"orderType":"limit","limitPrice":5000.25}
        market {"note":"{{symbol}}:{{qty}}","who":"{{account}}/{{venue_account}}","fixed":"always"} => {"note":"ES:2","who":"live/NT-1","fixed":"always"}
    "#;

    #[test]
    fn render_table() {
        let market = order(OrderType::Market, "2", None, None);
        let limit = order(
            OrderType::Limit,
            "12345678901.12345678",
            Some("5000.25"),
            Some("c1"),
        );
        for line in RENDER.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (kind, rest) = line.split_once(' ').unwrap();
            let (fields, expected) = rest.split_once(" => ").unwrap();
            let fields: Map<String, Value> = serde_json::from_str(fields).unwrap();
            let fields: Vec<(String, String)> = fields
                .into_iter()
                .map(|(k, t)| (k, t.as_str().unwrap().to_string()))
                .collect();
            let o = if kind == "market" { &market } else { &limit };
            let expected: Value = serde_json::from_str(expected).unwrap();
            let ctx = context(o, "NT-1", o.request.side.as_str());
            assert_eq!(render(&ctx, &fields), expected, "{line}");
        }
        // Exact digits, never through f64.
        let body = render(&context(&limit, "NT-1", "sell"), &[]);
        assert_eq!(body["qty"].to_string(), "12345678901.12345678");
        // A cancel says so.
        let body = render(&context(&limit, "NT-1", "cancel"), &[]);
        assert_eq!(body["action"], "cancel");
    }

    #[test]
    fn every_placeholder_has_a_value_in_the_context() {
        let o = order(OrderType::StopLimit, "2", Some("5000.25"), Some("abc"));
        let ctx = context(&o, "NT-1", "buy");
        for name in super::super::settings::PLACEHOLDERS {
            assert!(!ctx[name].is_null(), "{name}");
        }
        assert_eq!(
            ctx.as_object().unwrap().len(),
            super::super::settings::PLACEHOLDERS.len()
        );
    }

    #[test]
    fn sign_known_vector() {
        assert_eq!(
            sign("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    /// One line per report: `<id or c:client> <what>`, reports joined by `; `.
    fn show(reports: &[(OrderRef, VenueReport)]) -> String {
        let one = |(r, v): &(OrderRef, VenueReport)| {
            let who = match r {
                OrderRef::Id(id) => id.to_string(),
                OrderRef::Client(c) => format!("c:{c}"),
            };
            let what = match v {
                VenueReport::Fill {
                    exec_id,
                    qty,
                    price,
                    commission,
                } => {
                    format!("fill {exec_id} {qty}@{price} fee {commission}")
                }
                VenueReport::Canceled { reason } => format!("canceled ({reason})"),
                VenueReport::Rejected { code, reason } => format!("rejected {code} ({reason})"),
                other => format!("{other:?}").to_lowercase(),
            };
            format!("{who} {what}")
        };
        reports.iter().map(one).collect::<Vec<_>>().join("; ")
    }

    const REPORTS: &str = r#"
        {"order_id":"sov-12","type":"accepted"} => 12 accepted
        {"order_id":"7","client_order_id":"x","type":"Expired"} => 7 expired
        {"order_id":7,"type":"expired"} => 7 expired
        {"client_order_id":"abc","type":"fill","exec_id":"e1","qty":"1","price":"5000.123456"} => c:abc fill e1 1@5000.123456 fee 0
        {"order_id":"sov-3","type":"fill","exec_id":"e2","qty":2,"price":92233720368.54775807,"commission":"2.5"} => 3 fill e2 2@92233720368.54775807 fee 2.5
        {"reports":[{"order_id":"sov-1","type":"canceled"},{"order_id":"sov-2","type":"rejected","reason":"no margin"}]} => 1 canceled (canceled at the bridge); 2 rejected venue_rejected (no margin)
        {"reports":[{"order_id":"sov-3","type":"rejected","code":"margin","reason":null}]} => 3 rejected margin (rejected by the bridge)
        {"reports":[]} =>
    "#;

    /// `body => code field` (`-`: no field).
    const REPORT_ERRORS: &str = r#"
        not json => invalid_json -
        [1] => invalid_json -
        {"reports":{}} => invalid_json reports
        {"reports":[{"order_id":"1","type":"accepted"},5]} => invalid_json reports[1]
        {"order_id":true,"type":"accepted"} => invalid_json order_id
        {"type":"accepted"} => missing_field order_id
        {"order_id":"sov-x","type":"accepted"} => invalid_order_id order_id
        {"order_id":"sov-1"} => missing_field type
        {"order_id":"sov-1","type":"partial"} => invalid_report_type type
        {"order_id":"sov-1","type":"fill","qty":"1","price":"1"} => missing_field exec_id
        {"order_id":"sov-1","type":"fill","exec_id":"e","price":"1"} => missing_field qty
        {"order_id":"sov-1","type":"fill","exec_id":"e","qty":"1"} => missing_field price
        {"order_id":"sov-1","type":"fill","exec_id":"e","qty":"1.5.2","price":"1"} => invalid_number qty
        {"order_id":"sov-1","type":"fill","exec_id":"e","qty":"0.123456789","price":"1"} => invalid_number qty
        {"order_id":"sov-1","type":"fill","exec_id":"e","qty":1,"price":1e3} => invalid_number price
        {"order_id":"sov-1","type":"fill","exec_id":"e","qty":1,"price":1,"commission":[]} => invalid_number commission
        {"reports":[{"order_id":"1","type":"accepted"},{"order_id":"2","type":"fill","exec_id":"e","qty":"x","price":"1"}]} => invalid_number reports[1].qty
    "#;

    #[test]
    fn parse_reports_table() {
        for line in REPORTS.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (body, expected) = line.split_once(" =>").unwrap();
            let got = parse_reports(body.as_bytes()).map(|r| show(&r));
            assert_eq!(got, Ok(expected.trim().to_string()), "{line}");
        }
        for line in REPORT_ERRORS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let (body, expected) = line.split_once(" => ").unwrap();
            let e = parse_reports(body.as_bytes()).unwrap_err();
            let field = e.field.as_deref().unwrap_or("-");
            assert_eq!(format!("{} {field}", e.code), expected, "{line}");
        }
    }
}
