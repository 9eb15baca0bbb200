//! `[trading]` and `[signals.NAME]`: the files as written, and their validation into
//! [`TradingSettings`] and [`StrategySettings`], every problem collected (each instrument,
//! account limit and strategy field on its own).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Weekday;
use serde::Deserialize;
use sovereign_core::error::Invalid;
use sovereign_core::net::AllowList;
use sovereign_core::schedule::parse_duration;
use sovereign_core::trading::fixed::{Fixed, Money, Price, Qty};
use sovereign_core::trading::instrument::{AssetClass, Instrument, Instruments, Symbol};
use sovereign_core::trading::matching::PaperConfig;
use sovereign_core::trading::oms::AccountConfig;
use sovereign_core::trading::order::Tif;
use sovereign_core::trading::risk::{RiskLimits, TradingHours};
use sovereign_core::trading::signal::StrategyRule;

/// The trading core's validated settings.
#[derive(Debug, Clone)]
pub struct TradingSettings {
    pub instruments: Instruments,
    pub paper: PaperConfig,
    pub accounts: Vec<AccountConfig>,
    /// Random-walk prices on every instrument.
    pub synthetic_feed: bool,
    pub feed_interval: Duration,
    pub gateways: Vec<GatewaySettings>,
}

impl Default for TradingSettings {
    fn default() -> Self {
        TradingSettings {
            instruments: Instruments::builtin(),
            paper: PaperConfig {
                slippage_ticks: 1,
                commission_per_unit: Money::ZERO,
            },
            accounts: vec![default_account("paper")],
            synthetic_feed: true,
            feed_interval: Duration::from_millis(500),
            gateways: Vec::new(),
        }
    }
}

/// `[signals.NAME]`: how alerts posted to `/api/signals/NAME` become orders.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalFile {
    /// Must equal the alert body's `secret` (TradingView cannot set headers).
    pub secret: String,
    pub account: Option<String>,
    /// Ticker → symbol, e.g. `"ES1!" = "ES"`.
    #[serde(default)]
    pub symbols: BTreeMap<String, String>,
    /// A fixed quantity per alert ("2"), or "signal" to use the alert's contracts/qty (default).
    pub qty: Option<String>,
    /// An opposite alert closes and reverses the position (default true).
    pub reverse: Option<bool>,
    /// An alert with a price but no order_type becomes a limit order (default false: market).
    pub use_signal_price: Option<bool>,
    /// Tickers not in `symbols` are taken as symbols (default false: refused, `unknown_ticker`).
    pub passthrough: Option<bool>,
    /// Round alert prices onto the tick grid toward the passive side (default false: a price
    /// off the grid is refused).
    pub round_to_tick: Option<bool>,
    pub tif: Option<String>,
    pub dedup_window: Option<String>,
    /// Addresses alerts may come from: IPs, CIDR networks, `tradingview`. Absent: any.
    pub allow_from: Option<Vec<String>>,
    /// `delta` (default: each alert buys or sells its contracts) or `target` (each alert says
    /// the position to hold, `market_position` + `position_size`; the difference is traded).
    pub mode: Option<String>,
}

/// A configured strategy.
#[derive(Clone)]
pub struct StrategySettings {
    pub rule: StrategyRule,
    pub secret: String,
    pub dedup_window: Duration,
    /// Where alerts may come from; empty: anywhere. Checked before the secret.
    pub allow_from: AllowList,
}

impl std::fmt::Debug for StrategySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StrategySettings")
            .field("rule", &self.rule)
            .field("secret", &"<redacted>")
            .field("dedup_window", &self.dedup_window)
            .field("allow_from", &self.allow_from.describe())
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TradingFile {
    /// Random-walk prices on every instrument (default on).
    pub synthetic_feed: Option<bool>,
    pub feed_interval: Option<String>,
    /// Market orders without a bid/ask fill this many ticks worse than last.
    pub slippage_ticks: Option<u32>,
    /// Commission per contract/share/coin, e.g. "2.25".
    pub commission_per_unit: Option<String>,
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountFile>,
    #[serde(default)]
    pub instruments: BTreeMap<String, InstrumentFile>,
    /// `[trading.gateways.NAME]`: an account traded at a venue instead of the paper broker.
    #[serde(default)]
    pub gateways: BTreeMap<String, GatewayFile>,
}

/// A venue for one account, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayFile {
    /// `ninjatrader` (its file interface) or `webhook` (a broker bridge over HTTP).
    pub kind: String,
    /// The engine's account that trades there.
    pub account: String,
    /// The account's name at the venue (default: the engine's account name).
    pub venue_account: Option<String>,
    /// ninjatrader: NinjaTrader's folder (holding `incoming` and `outgoing`).
    pub dir: Option<std::path::PathBuf>,
    /// ninjatrader: symbol → NinjaTrader instrument (`ES = "ES 03-27"`); a quarterly future
    /// left out follows the CME roll (`ES` → the front month).
    #[serde(default)]
    pub instruments: BTreeMap<String, String>,
    /// ninjatrader: how often `outgoing` is read (default 50ms).
    pub poll: Option<String>,
    /// ninjatrader: the connection the account trades through (its state file is
    /// `outgoing/NAME.txt`); default: any connection state file.
    pub connection: Option<String>,
    /// ninjatrader: watch `outgoing` with file notifications (default true); it is read every
    /// `poll` either way.
    pub notifications: Option<bool>,
    /// webhook: where orders are posted.
    pub url: Option<String>,
    /// webhook: signs each order (`X-Sovereign-Signature`) and authenticates the bridge's
    /// reports.
    pub secret: Option<String>,
    /// webhook: the body's fields, each a template (`quantity = "{qty}"`); default: the
    /// engine's own order shape.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// webhook: extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// webhook: how long one attempt may take (default 10s).
    pub timeout: Option<String>,
    /// webhook: attempts after the first on 5xx, timeouts and connection errors (default 5).
    pub retries: Option<u32>,
    /// webhook: the bridge never reports back; orders end `accepted`.
    pub fire_and_forget: Option<bool>,
}

/// A venue for one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    pub name: String,
    pub account: String,
    pub venue_account: String,
    pub venue: VenueSettings,
}

/// What kind of venue, with its own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VenueSettings {
    NinjaTrader(NinjaSettings),
    Bridge(BridgeSettings),
}

/// A NinjaTrader installation's ATI folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NinjaSettings {
    pub dir: std::path::PathBuf,
    pub instruments: BTreeMap<Symbol, String>,
    pub poll: Duration,
    pub connection: Option<String>,
    pub notifications: bool,
}

/// How one broker bridge is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSettings {
    pub url: String,
    pub secret: String,
    /// Output JSON key → template; empty: the default shape.
    pub fields: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub retries: u32,
    pub fire_and_forget: bool,
}

/// The placeholders a bridge's field template may name.
pub const PLACEHOLDERS: &[&str] = &[
    "order_id",
    "client_order_id",
    "account",
    "venue_account",
    "symbol",
    "side",
    "action",
    "qty",
    "type",
    "limit_price",
    "stop_price",
    "tif",
];

/// Check that every template names only known `{{placeholders}}`.
pub fn check_fields(fields: &[(String, String)], field: &str) -> Result<(), Invalid> {
    let sample = serde_json::Value::Object(
        PLACEHOLDERS
            .iter()
            .map(|p| (p.to_string(), serde_json::Value::from("x")))
            .collect(),
    );
    for (key, template) in fields {
        let text = serde_json::Value::String(template.clone());
        if let Err(missing) = sovereign_core::template::render_value(&text, &sample) {
            return Err(Invalid::new(
                "unknown_placeholder",
                format!("{field}.{key}"),
                format!(
                    "no placeholder {{{{{}}}}}; known: {}",
                    missing.path,
                    PLACEHOLDERS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountFile {
    pub starting_cash: Option<String>,
    pub max_order_qty: Option<String>,
    pub max_order_notional: Option<String>,
    pub max_position: Option<String>,
    pub max_gross_exposure: Option<String>,
    pub max_open_orders: Option<u32>,
    pub max_order_rate: Option<u32>,
    pub rate_window: Option<String>,
    pub price_band_pct: Option<String>,
    pub allowed_symbols: Option<Vec<String>>,
    pub trading_hours: Option<HoursFile>,
    pub daily_loss_limit: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursFile {
    pub tz: String,
    pub start: String,
    pub end: String,
    pub weekdays: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentFile {
    pub class: Option<String>,
    pub tick_size: String,
    pub multiplier: Option<String>,
    pub qty_step: Option<String>,
    pub currency: Option<String>,
}

/// The paper account every engine has unless the config defines its accounts: 100,000 USD with
/// fat-finger limits on (order size, open orders, ±10% price band).
pub fn default_account(name: &str) -> AccountConfig {
    AccountConfig {
        name: name.to_string(),
        starting_cash: Money(Fixed::from_int(100_000).unwrap_or(Fixed::ZERO)),
        limits: RiskLimits {
            max_order_qty: Fixed::from_int(1_000).map(Qty),
            max_open_orders: Some(10_000),
            price_band_pct: Fixed::from_int(10),
            ..RiskLimits::default()
        },
    }
}

/// Validate `[trading]`, collecting every problem. The settings come back even when there are
/// problems (a bad value left at its default), so the sections that depend on them (signals,
/// tasks) are checked against the accounts and instruments the file names, not the defaults.
pub fn settings(file: TradingFile) -> (TradingSettings, Vec<Invalid>) {
    let mut s = TradingSettings::default();
    let mut problems: Vec<Invalid> = Vec::new();
    let mut note = |r: Result<(), Invalid>| {
        if let Err(e) = r {
            problems.push(e);
        }
    };
    if let Some(on) = file.synthetic_feed {
        s.synthetic_feed = on;
    }
    if let Some(t) = &file.feed_interval {
        note(parse_duration("trading.feed_interval", t).map(|d| s.feed_interval = d));
    }
    if let Some(n) = file.slippage_ticks {
        s.paper.slippage_ticks = n;
    }
    if let Some(c) = &file.commission_per_unit {
        note(
            fixed_field("trading.commission_per_unit", c)
                .map(|c| s.paper.commission_per_unit = Money(c)),
        );
    }
    for (name, i) in file.instruments {
        note(instrument(&name, i).map(|i| s.instruments.insert(i)));
    }
    if !file.accounts.is_empty() {
        s.accounts.clear();
    }
    for (name, a) in file.accounts {
        let (account, errs) = account(&name, a, &s.instruments);
        s.accounts.push(account);
        problems.extend(errs);
    }
    for (name, g) in file.gateways {
        match gateway(&name, g, &s) {
            Ok(g) => s.gateways.push(g),
            Err(errs) => problems.extend(errs),
        }
    }
    (s, problems)
}

fn gateway(
    name: &str,
    g: GatewayFile,
    s: &TradingSettings,
) -> Result<GatewaySettings, Vec<Invalid>> {
    let field = |f: &str| format!("trading.gateways.{name}.{f}");
    let mut problems = Vec::new();
    if !s.accounts.iter().any(|a| a.name == g.account) {
        problems.push(Invalid::new(
            "unknown_account",
            field("account"),
            format!("no trading account {:?}", g.account),
        ));
    }
    let mut duration = |f: &str, text: &Option<String>, default: Duration| match text {
        Some(t) => match parse_duration(&field(f), t) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                problems.push(Invalid::new(
                    "invalid_duration",
                    field(f),
                    format!("{f} must be more than 0"),
                ));
                default
            }
            Err(e) => {
                problems.push(e);
                default
            }
        },
        None => default,
    };
    let poll = duration("poll", &g.poll, Duration::from_millis(50));
    let timeout = duration("timeout", &g.timeout, Duration::from_secs(10));
    // Keys of the other kind are mistakes worth naming, not silently ignored.
    let mut foreign = |present: bool, key: &str, kind: &str| {
        if present {
            problems.push(Invalid::new(
                "unknown_field",
                field(key),
                format!("{key} is a setting of a {kind} gateway"),
            ));
        }
    };
    let venue = match g.kind.as_str() {
        "ninjatrader" => {
            foreign(g.url.is_some(), "url", "webhook");
            foreign(g.secret.is_some(), "secret", "webhook");
            foreign(!g.fields.is_empty(), "fields", "webhook");
            foreign(!g.headers.is_empty(), "headers", "webhook");
            foreign(g.timeout.is_some(), "timeout", "webhook");
            foreign(g.retries.is_some(), "retries", "webhook");
            foreign(g.fire_and_forget.is_some(), "fire_and_forget", "webhook");
            let mut instruments = BTreeMap::new();
            for (sym, nt) in &g.instruments {
                match s.instruments.find(sym) {
                    Ok(i) => {
                        instruments.insert(i.symbol.clone(), nt.clone());
                    }
                    Err(e) => problems.push(Invalid::new(
                        e.code,
                        field(&format!("instruments.{sym}")),
                        e.message,
                    )),
                }
            }
            let dir = g.dir.unwrap_or_default();
            if dir.as_os_str().is_empty() {
                problems.push(Invalid::new(
                    "missing_field",
                    field("dir"),
                    "a ninjatrader gateway needs dir, NinjaTrader's folder holding incoming and outgoing",
                ));
            }
            VenueSettings::NinjaTrader(NinjaSettings {
                dir,
                instruments,
                poll,
                connection: g.connection,
                notifications: g.notifications.unwrap_or(true),
            })
        }
        "webhook" => {
            foreign(g.dir.is_some(), "dir", "ninjatrader");
            foreign(!g.instruments.is_empty(), "instruments", "ninjatrader");
            foreign(g.poll.is_some(), "poll", "ninjatrader");
            foreign(g.connection.is_some(), "connection", "ninjatrader");
            foreign(g.notifications.is_some(), "notifications", "ninjatrader");
            let url = g.url.unwrap_or_default();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push(Invalid::new(
                    "invalid_url",
                    field("url"),
                    format!("url must be an http:// or https:// address, not {url:?}"),
                ));
            }
            let secret = g.secret.unwrap_or_default();
            if secret.len() < 16 {
                problems.push(Invalid::new(
                    "weak_secret",
                    field("secret"),
                    "a webhook gateway needs a secret of at least 16 characters (it signs orders and authenticates reports)",
                ));
            }
            let fields: Vec<(String, String)> = g.fields.into_iter().collect();
            if let Err(e) = check_fields(&fields, &field("fields")) {
                problems.push(e);
            }
            VenueSettings::Bridge(BridgeSettings {
                url,
                secret,
                fields,
                headers: g.headers.into_iter().collect(),
                timeout,
                retries: g.retries.unwrap_or(5),
                fire_and_forget: g.fire_and_forget.unwrap_or(false),
            })
        }
        other => {
            problems.push(Invalid::new(
                "invalid_gateway",
                field("kind"),
                format!("kind must be ninjatrader or webhook, not {other:?}"),
            ));
            return Err(problems);
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(GatewaySettings {
        name: name.to_string(),
        venue_account: g.venue_account.unwrap_or_else(|| g.account.clone()),
        account: g.account,
        venue,
    })
}

fn instrument(name: &str, i: InstrumentFile) -> Result<Instrument, Invalid> {
    let field = |f: &str| format!("trading.instruments.{name}.{f}");
    let symbol = Symbol::parse(name).map_err(|e| e.within("trading.instruments"))?;
    let class = match i.class.as_deref().unwrap_or("future") {
        "future" => AssetClass::Future,
        "equity" => AssetClass::Equity,
        "crypto" => AssetClass::Crypto,
        other => {
            return Err(Invalid::new(
                "invalid_class",
                field("class"),
                format!("class must be future, equity or crypto, not {other:?}"),
            ))
        }
    };
    let tick = fixed_field(&field("tick_size"), &i.tick_size)?;
    let multiplier = fixed_field(&field("multiplier"), i.multiplier.as_deref().unwrap_or("1"))?;
    let step = fixed_field(&field("qty_step"), i.qty_step.as_deref().unwrap_or("1"))?;
    if !tick.is_positive() || !multiplier.is_positive() || !step.is_positive() {
        return Err(Invalid::new(
            "invalid_instrument",
            format!("trading.instruments.{name}"),
            "tick_size, multiplier and qty_step must be greater than 0",
        ));
    }
    Ok(Instrument {
        symbol,
        class,
        tick_size: Price(tick),
        multiplier,
        currency: i.currency.unwrap_or_else(|| "USD".into()),
        qty_step: Qty(step),
    })
}

/// One account (bad values left at their defaults) and every problem of its limits.
fn account(name: &str, a: AccountFile, instruments: &Instruments) -> (AccountConfig, Vec<Invalid>) {
    let mut problems: Vec<Invalid> = Vec::new();
    let field = |f: &str| format!("trading.accounts.{name}.{f}");
    let mut account = default_account(name);
    {
        // Each setting on its own: a bad one is noted and the rest are still checked.
        let mut take = |r: Result<(), Invalid>| {
            if let Err(e) = r {
                problems.push(e);
            }
        };
        // Every amount and limit is greater than 0: a zero or negative limit is a typo that
        // would deny every order or none.
        let money = |f: &str, v: &Option<String>| -> Result<Option<Money>, Invalid> {
            v.as_deref()
                .map(|t| positive_field(&field(f), t).map(Money))
                .transpose()
        };
        let qty = |f: &str, v: &Option<String>| -> Result<Option<Qty>, Invalid> {
            v.as_deref()
                .map(|t| positive_field(&field(f), t).map(Qty))
                .transpose()
        };
        let at_least_one = |f: &str, n: u32| -> Result<u32, Invalid> {
            if n == 0 {
                Err(Invalid::new(
                    "invalid_limit",
                    field(f),
                    format!("{f} must be at least 1"),
                ))
            } else {
                Ok(n)
            }
        };
        take(money("starting_cash", &a.starting_cash).map(|c| {
            if let Some(c) = c {
                account.starting_cash = c;
            }
        }));
        let l = &mut account.limits;
        take(qty("max_order_qty", &a.max_order_qty).map(|q| {
            if q.is_some() {
                l.max_order_qty = q;
            }
        }));
        take(money("max_order_notional", &a.max_order_notional).map(|m| l.max_order_notional = m));
        take(qty("max_position", &a.max_position).map(|q| l.max_position = q));
        take(money("max_gross_exposure", &a.max_gross_exposure).map(|m| l.max_gross_exposure = m));
        if let Some(n) = a.max_open_orders {
            take(at_least_one("max_open_orders", n).map(|n| l.max_open_orders = Some(n)));
        }
        if let Some(n) = a.max_order_rate {
            let window = match &a.rate_window {
                Some(w) => parse_duration(&field("rate_window"), w).and_then(|w| {
                    if w.is_zero() {
                        Err(Invalid::new(
                            "invalid_duration",
                            field("rate_window"),
                            "rate_window must be more than 0",
                        ))
                    } else {
                        Ok(w)
                    }
                }),
                None => Ok(Duration::from_secs(1)),
            };
            take(
                at_least_one("max_order_rate", n)
                    .and_then(|n| window.map(|w| l.max_orders_per_window = Some((n, w)))),
            );
        } else if a.rate_window.is_some() {
            take(Err(Invalid::new(
                "unused_setting",
                field("rate_window"),
                "rate_window applies only with max_order_rate",
            )));
        }
        if let Some(p) = &a.price_band_pct {
            take(positive_field(&field("price_band_pct"), p).map(|p| l.price_band_pct = Some(p)));
        }
        if let Some(symbols) = &a.allowed_symbols {
            let found = symbols
                .iter()
                .map(|t| {
                    instruments
                        .find(t)
                        .map(|i| i.symbol.clone())
                        .map_err(|e| e.within(&field("allowed_symbols")))
                })
                .collect::<Result<_, _>>();
            take(found.map(|f| l.allowed_symbols = Some(f)));
        }
        if let Some(h) = &a.trading_hours {
            let days: Result<Vec<Weekday>, Invalid> = match &h.weekdays {
                Some(d) => d
                    .iter()
                    .map(|x| {
                        x.parse::<Weekday>().map_err(|_| {
                            Invalid::new(
                                "invalid_weekday",
                                field("trading_hours.weekdays"),
                                format!("{x:?} is not a weekday"),
                            )
                        })
                    })
                    .collect(),
                None => Ok(vec![
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                ]),
            };
            take(days.and_then(|days| {
                TradingHours::parse(&h.tz, &h.start, &h.end, &days)
                    .map_err(|e| e.within(&format!("trading.accounts.{name}")))
                    .map(|hours| l.trading_hours = Some(hours))
            }));
        }
        take(money("daily_loss_limit", &a.daily_loss_limit).map(|m| l.daily_loss_limit = m));
    }
    (account, problems)
}

/// Validate `[signals.NAME]` against the trading settings, collecting every problem.
pub fn strategies(
    files: BTreeMap<String, SignalFile>,
    trading: &TradingSettings,
) -> Result<BTreeMap<String, StrategySettings>, Vec<Invalid>> {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, f) in files {
        match strategy(&name, f, trading) {
            Ok(s) => {
                out.insert(name, s);
            }
            Err(errs) => problems.extend(errs),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn strategy(
    name: &str,
    f: SignalFile,
    s: &TradingSettings,
) -> Result<StrategySettings, Vec<Invalid>> {
    let mut problems = Vec::new();
    let field = |k: &str| format!("signals.{name}.{k}");
    let mut note = |e: Invalid| problems.push(e);
    if f.secret.len() < 8 {
        note(Invalid::new(
            "weak_secret",
            field("secret"),
            "the secret must be at least 8 characters",
        ));
    }
    let account = f.account.unwrap_or_else(|| "paper".into());
    if !s.accounts.iter().any(|a| a.name == account) {
        note(Invalid::new(
            "unknown_account",
            field("account"),
            format!("no trading account {account:?}"),
        ));
    }
    let mut symbols = Vec::new();
    for (ticker, sym) in &f.symbols {
        match s.instruments.find(sym) {
            Ok(i) => {
                symbols.push((ticker.clone(), i.symbol.clone()));
            }
            Err(e) => note(Invalid::new(
                e.code,
                field(&format!("symbols.{ticker}")),
                e.message,
            )),
        }
    }
    let fixed_qty = match f.qty.as_deref() {
        None | Some("signal") => None,
        Some(q) => positive_field(&field("qty"), q)
            .map(Qty)
            .map_err(&mut note)
            .ok(),
    };
    let tif = match f.tif.as_deref() {
        Some(t) => Tif::parse(t)
            .map_err(|e| note(e.within(&format!("signals.{name}"))))
            .unwrap_or(Tif::Day),
        None => Tif::Day,
    };
    let dedup_window = match &f.dedup_window {
        Some(w) => parse_duration(&field("dedup_window"), w)
            .map_err(&mut note)
            .unwrap_or_default(),
        None => Duration::from_secs(600),
    };
    let allow_from = match &f.allow_from {
        Some(items) if items.is_empty() => {
            note(Invalid::new(
                "invalid_address",
                field("allow_from"),
                "allow_from is empty: list the addresses (an IP, a CIDR network like \
                 10.0.0.0/8, or `tradingview`), or remove the key to accept any address",
            ));
            AllowList::default()
        }
        Some(items) => AllowList::parse(items, &field("allow_from")).unwrap_or_else(|errs| {
            errs.into_iter().for_each(&mut note);
            AllowList::default()
        }),
        None => AllowList::default(),
    };
    let target = match f.mode.as_deref() {
        None | Some("delta") => false,
        Some("target") => true,
        Some(other) => {
            note(Invalid::new(
                "invalid_mode",
                field("mode"),
                format!("mode must be delta or target, not {other:?}"),
            ));
            false
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(StrategySettings {
        rule: StrategyRule {
            name: name.to_string(),
            account,
            symbols,
            passthrough: f.passthrough.unwrap_or(false),
            round_to_tick: f.round_to_tick.unwrap_or(false),
            fixed_qty,
            reverse: f.reverse.unwrap_or(true),
            use_signal_price: f.use_signal_price.unwrap_or(false),
            tif,
            target,
        },
        secret: f.secret,
        dedup_window,
        allow_from,
    })
}

fn fixed_field(field: &str, text: &str) -> Result<Fixed, Invalid> {
    Fixed::parse(text).map_err(|e| Invalid::new("invalid_number", field, e.to_string()))
}

/// A decimal setting that must be greater than 0.
fn positive_field(field: &str, text: &str) -> Result<Fixed, Invalid> {
    let v = fixed_field(field, text)?;
    if v.is_positive() {
        Ok(v)
    } else {
        let name = field.rsplit('.').next().unwrap_or(field);
        Err(Invalid::new(
            "invalid_limit",
            field,
            format!("{name} must be greater than 0, not {text}"),
        ))
    }
}
