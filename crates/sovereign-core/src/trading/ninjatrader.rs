//! NinjaTrader's Automated Trading Interface, file flavour, as text: the Order Instruction File
//! lines the engine writes into `incoming`, and the information update files NinjaTrader
//! writes into `outgoing` (order state, position, connection), read back into values.
//!
//! Every OIF line has the documented thirteen fields, `;`-separated, empty where unused:
//! `COMMAND;ACCOUNT;INSTRUMENT;ACTION;QTY;ORDER TYPE;LIMIT PRICE;STOP PRICE;TIF;OCO ID;ORDER
//! ID;STRATEGY;STRATEGY ID`. Orders the interface cannot express (IOC, FOK, a fractional
//! quantity) are refused before anything is written.
//!
//! An order state file is cumulative (`State;Filled;AvgPrice`): [`increment`] turns two
//! readings into the fill between them. NinjaTrader computes the average in floating point,
//! so the increment's price is taken from the change in filled notional and snapped to the
//! instrument's tick when it lies within rounding noise of one (a single fill is always on the
//! tick). Readings are taken leniently where NinjaTrader is loose (more than eight decimals, a
//! decimal comma, any letter case) and strictly where a wrong value would move money (the
//! filled quantity must be a whole number, never falling).
//!
//! [`front_month`] is the CME quarterly roll (March, June, September, December; trading moves
//! to the next contract on the roll date, the second Thursday of the contract month, eight days
//! before the third-Friday expiry), so `ES` maps to `ES 03-27` and changes on its own.

use chrono::{Datelike, NaiveDate, Weekday};

use crate::error::Invalid;
use crate::trading::fixed::{Fixed, Price, Qty, SCALE};
use crate::trading::order::{Order, OrderType, Side, Tif};

/// One Order Instruction File line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Place {
        account: String,
        instrument: String,
        side: Side,
        qty: i64,
        order_type: OrderType,
        limit: Option<Price>,
        stop: Option<Price>,
        gtc: bool,
        order_id: String,
    },
    Cancel {
        order_id: String,
    },
    Change {
        order_id: String,
        qty: Option<i64>,
        limit: Option<Price>,
        stop: Option<Price>,
    },
    ClosePosition {
        account: String,
        instrument: String,
    },
    CancelAllOrders,
    FlattenEverything,
}

fn price(p: Option<Price>) -> String {
    p.map(|p| p.to_string()).unwrap_or_default()
}

impl Command {
    /// The line, exactly as the interface documents it (no line break).
    pub fn line(&self) -> String {
        let fields: [String; 13] = match self {
            Command::Place {
                account,
                instrument,
                side,
                qty,
                order_type,
                limit,
                stop,
                gtc,
                order_id,
            } => [
                "PLACE".into(),
                account.clone(),
                instrument.clone(),
                match side {
                    Side::Buy => "BUY".into(),
                    Side::Sell => "SELL".into(),
                },
                qty.to_string(),
                match order_type {
                    OrderType::Market => "MARKET",
                    OrderType::Limit => "LIMIT",
                    OrderType::Stop => "STOP",
                    OrderType::StopLimit => "STOPLIMIT",
                }
                .into(),
                price(*limit),
                price(*stop),
                if *gtc { "GTC" } else { "DAY" }.into(),
                String::new(),
                order_id.clone(),
                String::new(),
                String::new(),
            ],
            Command::Cancel { order_id } => {
                let mut f: [String; 13] = Default::default();
                f[0] = "CANCEL".into();
                f[10] = order_id.clone();
                f
            }
            Command::Change {
                order_id,
                qty,
                limit,
                stop,
            } => {
                // The interface reads 0 as "leave it".
                let mut f: [String; 13] = Default::default();
                f[0] = "CHANGE".into();
                f[4] = qty.unwrap_or(0).to_string();
                f[6] = limit.map_or_else(|| "0".into(), |p| p.to_string());
                f[7] = stop.map_or_else(|| "0".into(), |p| p.to_string());
                f[10] = order_id.clone();
                f
            }
            Command::ClosePosition {
                account,
                instrument,
            } => {
                let mut f: [String; 13] = Default::default();
                f[0] = "CLOSEPOSITION".into();
                f[1] = account.clone();
                f[2] = instrument.clone();
                f
            }
            Command::CancelAllOrders => {
                let mut f: [String; 13] = Default::default();
                f[0] = "CANCELALLORDERS".into();
                f
            }
            Command::FlattenEverything => {
                let mut f: [String; 13] = Default::default();
                f[0] = "FLATTENEVERYTHING".into();
                f
            }
        };
        fields.join(";")
    }

    /// The PLACE line for an order of the OMS, or why the interface cannot express it.
    pub fn place(
        order: &Order,
        account: &str,
        instrument: &str,
        order_id: &str,
    ) -> Result<Command, Invalid> {
        let r = &order.request;
        let gtc = match r.tif {
            Tif::Day => false,
            Tif::Gtc => true,
            // A market order fills at once or not at all anyway: IOC is what DAY does with it.
            Tif::Ioc if r.order_type == OrderType::Market => false,
            Tif::Ioc | Tif::Fok => {
                return Err(Invalid::new(
                    "venue_unsupported",
                    "tif",
                    format!(
                        "NinjaTrader's order files take only day and gtc orders, not {}",
                        r.tif.as_str()
                    ),
                ))
            }
        };
        let qty = contracts(r.qty).ok_or_else(|| {
            Invalid::new(
                "venue_unsupported",
                "qty",
                format!(
                    "NinjaTrader's order files take whole quantities, not {}",
                    r.qty
                ),
            )
        })?;
        Ok(Command::Place {
            account: account.to_string(),
            instrument: instrument.to_string(),
            side: r.side,
            qty,
            order_type: r.order_type,
            limit: r.limit_price,
            stop: r.stop_price,
            gtc,
            order_id: order_id.to_string(),
        })
    }
}

impl Command {
    /// Read an OIF line as NinjaTrader does: thirteen `;`-separated fields (trailing empty ones
    /// may be left off), the command and words in any letter case; a line NinjaTrader would
    /// reject is refused with what is wrong.
    pub fn parse(line: &str) -> Result<Command, Invalid> {
        let line = line.trim_end_matches(['\r', '\n']);
        let fields: Vec<&str> = line.split(';').map(str::trim).collect();
        if fields.len() > 13 {
            return Err(oif("too many fields", line));
        }
        let at = |i: usize| fields.get(i).copied().unwrap_or("");
        let required = |i: usize, name: &str| -> Result<String, Invalid> {
            let v = at(i);
            if v.is_empty() {
                Err(oif(&format!("{name} is required"), line))
            } else {
                Ok(v.to_string())
            }
        };
        let price_at = |i: usize, name: &str| -> Result<Option<Price>, Invalid> {
            match at(i) {
                "" => Ok(None),
                v => Fixed::parse(v)
                    .ok()
                    .filter(|p| !p.is_negative())
                    .map(|p| (!p.is_zero()).then_some(Price(p)))
                    .ok_or_else(|| oif(&format!("{name} {v:?} is not a price"), line)),
            }
        };
        let qty_at = |i: usize| -> Result<i64, Invalid> {
            at(i)
                .parse::<i64>()
                .ok()
                .filter(|q| *q >= 0)
                .ok_or_else(|| oif(&format!("quantity {:?} is not a whole number", at(i)), line))
        };
        match at(0).to_ascii_uppercase().as_str() {
            "PLACE" => {
                let side = match at(3).to_ascii_uppercase().as_str() {
                    "BUY" => Side::Buy,
                    "SELL" => Side::Sell,
                    other => {
                        return Err(oif(&format!("action {other:?} is not BUY or SELL"), line))
                    }
                };
                let qty = qty_at(4)?;
                if qty == 0 {
                    return Err(oif("quantity must be at least 1", line));
                }
                let order_type = match at(5).to_ascii_uppercase().as_str() {
                    "MARKET" => OrderType::Market,
                    "LIMIT" => OrderType::Limit,
                    "STOP" | "STOPMARKET" => OrderType::Stop,
                    "STOPLIMIT" => OrderType::StopLimit,
                    other => return Err(oif(&format!("order type {other:?} is not known"), line)),
                };
                let (limit, stop) = (price_at(6, "limit price")?, price_at(7, "stop price")?);
                let needs_limit = matches!(order_type, OrderType::Limit | OrderType::StopLimit);
                let needs_stop = matches!(order_type, OrderType::Stop | OrderType::StopLimit);
                if needs_limit && limit.is_none() || needs_stop && stop.is_none() {
                    return Err(oif("the order type needs its price", line));
                }
                let gtc = match at(8).to_ascii_uppercase().as_str() {
                    "DAY" => false,
                    "GTC" => true,
                    other => return Err(oif(&format!("TIF {other:?} is not DAY or GTC"), line)),
                };
                Ok(Command::Place {
                    account: required(1, "the account")?,
                    instrument: required(2, "the instrument")?,
                    side,
                    qty,
                    order_type,
                    limit,
                    stop,
                    gtc,
                    order_id: at(10).to_string(),
                })
            }
            "CANCEL" => Ok(Command::Cancel {
                order_id: required(10, "the order id")?,
            }),
            "CHANGE" => {
                let qty = match at(4) {
                    "" => None,
                    _ => Some(qty_at(4)?).filter(|q| *q > 0),
                };
                Ok(Command::Change {
                    order_id: required(10, "the order id")?,
                    qty,
                    limit: price_at(6, "limit price")?,
                    stop: price_at(7, "stop price")?,
                })
            }
            "CLOSEPOSITION" => Ok(Command::ClosePosition {
                account: required(1, "the account")?,
                instrument: required(2, "the instrument")?,
            }),
            "CANCELALLORDERS" => Ok(Command::CancelAllOrders),
            "FLATTENEVERYTHING" => Ok(Command::FlattenEverything),
            other => Err(oif(&format!("command {other:?} is not known"), line)),
        }
    }
}

fn oif(what: &str, line: &str) -> Invalid {
    Invalid::new("malformed_oif", "incoming", format!("{what}: {line:?}"))
}

fn whole(f: Fixed) -> Option<i64> {
    (f.raw() % SCALE == 0).then_some(f.raw() / SCALE)
}

/// A quantity as the interface writes it: whole contracts, or `None`.
pub fn contracts(q: Qty) -> Option<i64> {
    whole(q.0)
}

/// An order's state as NinjaTrader names it (`OrderState`, any letter case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderState {
    Initialized,
    Submitted,
    Accepted,
    TriggerPending,
    Working,
    ChangePending,
    ChangeSubmitted,
    CancelPending,
    CancelSubmitted,
    Cancelled,
    Rejected,
    PartFilled,
    Filled,
    Unknown,
}

impl OrderState {
    const NAMES: [(&'static str, OrderState); 14] = [
        ("INITIALIZED", OrderState::Initialized),
        ("SUBMITTED", OrderState::Submitted),
        ("ACCEPTED", OrderState::Accepted),
        ("TRIGGERPENDING", OrderState::TriggerPending),
        ("WORKING", OrderState::Working),
        ("CHANGEPENDING", OrderState::ChangePending),
        ("CHANGESUBMITTED", OrderState::ChangeSubmitted),
        ("CANCELPENDING", OrderState::CancelPending),
        ("CANCELSUBMITTED", OrderState::CancelSubmitted),
        ("CANCELLED", OrderState::Cancelled),
        ("REJECTED", OrderState::Rejected),
        ("PARTFILLED", OrderState::PartFilled),
        ("FILLED", OrderState::Filled),
        ("UNKNOWN", OrderState::Unknown),
    ];

    pub fn parse(text: &str) -> Option<OrderState> {
        let t = text.trim().to_ascii_uppercase().replace(['_', ' '], "");
        OrderState::NAMES
            .iter()
            .find(|(n, _)| *n == t)
            .map(|(_, s)| *s)
    }

    pub fn as_str(self) -> &'static str {
        OrderState::NAMES
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("UNKNOWN", |(n, _)| n)
    }

    /// Whether the venue works the order (the OMS's `accepted`).
    pub fn is_working(self) -> bool {
        matches!(
            self,
            OrderState::Accepted
                | OrderState::TriggerPending
                | OrderState::Working
                | OrderState::ChangePending
                | OrderState::ChangeSubmitted
                | OrderState::CancelPending
                | OrderState::CancelSubmitted
                | OrderState::PartFilled
        )
    }
}

/// One reading of an order state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderReading {
    pub state: OrderState,
    /// Filled so far (a whole number).
    pub filled: i64,
    /// Average fill price so far (zero before the first fill).
    pub avg_price: Fixed,
}

fn bad(code: &'static str, message: String) -> Invalid {
    Invalid::new(code, "outgoing", message)
}

/// A decimal as NinjaTrader writes it: a point or a comma, any number of decimals (rounded
/// half to even at the eighth).
pub fn parse_decimal(text: &str) -> Option<Fixed> {
    let t = text.trim();
    let t = if t.contains('.') {
        t.to_string()
    } else {
        t.replace(',', ".")
    };
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.as_str()),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut raw = int.checked_mul(SCALE as i128)?;
    let kept = &frac[..frac.len().min(8)];
    let mut scale = SCALE as i128 / 10;
    for d in kept.bytes() {
        raw += i128::from(d - b'0') * scale;
        scale /= 10;
    }
    if frac.len() > 8 {
        // Round half to even on what is cut off.
        let rest = &frac[8..];
        let first = rest.as_bytes()[0] - b'0';
        let beyond = rest[1..].bytes().any(|b| b != b'0');
        if first > 5 || first == 5 && (beyond || raw % 2 == 1) {
            raw += 1;
        }
    }
    let raw = if neg { -raw } else { raw };
    i64::try_from(raw).ok().map(Fixed::from_raw)
}

/// Read an order state file (`State;Filled;AvgPrice`).
pub fn parse_order_state(text: &str) -> Result<OrderReading, Invalid> {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let fields: Vec<&str> = line.split(';').collect();
    if fields.len() != 3 {
        return Err(bad(
            "malformed_order_state",
            format!("an order state file holds State;Filled;AvgPrice, not {line:?}"),
        ));
    }
    let state = OrderState::parse(fields[0]).ok_or_else(|| {
        bad(
            "unknown_order_state",
            format!(
                "{:?} is not an order state NinjaTrader writes",
                fields[0].trim()
            ),
        )
    })?;
    let filled = parse_decimal(fields[1])
        .and_then(whole)
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            bad(
                "malformed_order_state",
                format!(
                    "the filled amount {:?} is not a whole number",
                    fields[1].trim()
                ),
            )
        })?;
    let avg_price = parse_decimal(fields[2])
        .filter(|p| !p.is_negative())
        .ok_or_else(|| {
            bad(
                "malformed_order_state",
                format!("the average price {:?} is not a price", fields[2].trim()),
            )
        })?;
    Ok(OrderReading {
        state,
        filled,
        avg_price,
    })
}

/// The fill between two readings of one order: its quantity and price. `None` when nothing
/// more was filled. A filled amount that falls is an error (the file is not this order's, or
/// NinjaTrader restarted); a price is snapped to `tick` when within rounding noise of it.
pub fn increment(
    before: (i64, Fixed),
    after: (i64, Fixed),
    tick: Price,
) -> Result<Option<(Qty, Price)>, Invalid> {
    let (was, was_avg) = before;
    let (now, now_avg) = after;
    if now < was {
        return Err(bad(
            "filled_went_back",
            format!("the filled amount fell from {was} to {now}"),
        ));
    }
    if now == was {
        return Ok(None);
    }
    let qty = now - was;
    // Notional in raw units (price × 10^8 × whole quantity), exact in i128.
    let notional =
        i128::from(now_avg.raw()) * i128::from(now) - i128::from(was_avg.raw()) * i128::from(was);
    let q = i128::from(qty);
    let half = q / 2;
    let raw = if notional >= 0 {
        (notional + half) / q
    } else {
        (notional - half) / q
    };
    let raw = i64::try_from(raw)
        .map_err(|_| bad("malformed_order_state", "a price out of range".into()))?;
    let mut price = Fixed::from_raw(raw);
    let snapped = price.round_to(tick.0);
    // Within a millionth of a point of a tick: the float average's noise, not a price.
    if (snapped.raw() - price.raw()).abs() <= SCALE / 1_000_000 {
        price = snapped;
    }
    if !price.is_positive() {
        return Err(bad(
            "malformed_order_state",
            format!("the fill between the readings has no price ({price})"),
        ));
    }
    Ok(Some((Qty(Fixed::from_raw(qty * SCALE)), Price(price))))
}

/// A position file's reading: signed quantity and average entry price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositionReading {
    pub qty: i64,
    pub avg_price: Fixed,
}

/// Read a position file (`LONG|SHORT|FLAT;Qty;AvgPrice`).
pub fn parse_position(text: &str) -> Result<PositionReading, Invalid> {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let fields: Vec<&str> = line.split(';').map(str::trim).collect();
    let malformed = || {
        bad(
            "malformed_position",
            format!("a position file holds LONG|SHORT|FLAT;Qty;AvgPrice, not {line:?}"),
        )
    };
    if fields.len() != 3 {
        return Err(malformed());
    }
    let qty = parse_decimal(fields[1])
        .and_then(whole)
        .filter(|n| *n >= 0)
        .ok_or_else(malformed)?;
    let avg_price = parse_decimal(fields[2]).ok_or_else(malformed)?;
    let qty = match fields[0].to_ascii_uppercase().as_str() {
        "LONG" => qty,
        "SHORT" => -qty,
        "FLAT" => 0,
        _ => return Err(malformed()),
    };
    Ok(PositionReading { qty, avg_price })
}

/// The instrument (with its exchange) of a position file of `account`:
/// `ES 03-27 Globex_Sim101_Position.txt` → `ES 03-27 Globex`.
pub fn position_file_instrument<'a>(file_name: &'a str, account: &str) -> Option<&'a str> {
    let rest = file_name.strip_suffix("_Position.txt")?;
    let instrument = rest.strip_suffix(account)?.strip_suffix('_')?;
    (!instrument.is_empty()).then_some(instrument)
}

/// Read a connection state file: `true` when `CONNECTED`.
pub fn parse_connection(text: &str) -> Result<bool, Invalid> {
    match text.trim().to_ascii_uppercase().as_str() {
        "CONNECTED" => Ok(true),
        "DISCONNECTED" => Ok(false),
        other => Err(bad(
            "malformed_connection_state",
            format!("a connection state file holds CONNECTED or DISCONNECTED, not {other:?}"),
        )),
    }
}

/// The roll date of the quarterly contract expiring in `month` of `year`: the second Thursday.
fn roll_date(year: i32, month: u32) -> Option<NaiveDate> {
    NaiveDate::from_weekday_of_month_opt(year, month, Weekday::Thu, 2)
}

/// The front quarterly contract of `root` on `date`, in NinjaTrader's naming: `ES 03-27`.
pub fn front_month(root: &str, date: NaiveDate) -> Option<String> {
    let (mut year, mut month) = (date.year(), date.month().div_ceil(3) * 3);
    if roll_date(year, month).is_some_and(|roll| date >= roll) {
        month += 3;
        if month > 12 {
            month = 3;
            year += 1;
        }
    }
    Some(format!("{root} {month:02}-{:02}", year.rem_euclid(100)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn px(s: &str) -> Price {
        Price(Fixed::parse(s).unwrap())
    }

    #[test]
    fn every_line_has_the_documented_thirteen_fields() {
        let cases = [
            (
                Command::Place {
                    account: "Sim101".into(),
                    instrument: "ES 03-27".into(),
                    side: Side::Buy,
                    qty: 2,
                    order_type: OrderType::Limit,
                    limit: Some(px("5000.25")),
                    stop: None,
                    gtc: true,
                    order_id: "sov-17".into(),
                },
                "PLACE;Sim101;ES 03-27;BUY;2;LIMIT;5000.25;;GTC;;sov-17;;",
            ),
            (
                Command::Place {
                    account: "Sim101".into(),
                    instrument: "NQ 06-27".into(),
                    side: Side::Sell,
                    qty: 1,
                    order_type: OrderType::StopLimit,
                    limit: Some(px("17999")),
                    stop: Some(px("18000.5")),
                    gtc: false,
                    order_id: "sov-18".into(),
                },
                "PLACE;Sim101;NQ 06-27;SELL;1;STOPLIMIT;17999;18000.5;DAY;;sov-18;;",
            ),
            (
                Command::Cancel {
                    order_id: "sov-17".into(),
                },
                "CANCEL;;;;;;;;;;sov-17;;",
            ),
            (
                Command::Change {
                    order_id: "sov-17".into(),
                    qty: None,
                    limit: Some(px("4999.75")),
                    stop: None,
                },
                "CHANGE;;;;0;;4999.75;0;;;sov-17;;",
            ),
            (
                Command::ClosePosition {
                    account: "Sim101".into(),
                    instrument: "ES 03-27".into(),
                },
                "CLOSEPOSITION;Sim101;ES 03-27;;;;;;;;;;",
            ),
            (Command::CancelAllOrders, "CANCELALLORDERS;;;;;;;;;;;;"),
            (Command::FlattenEverything, "FLATTENEVERYTHING;;;;;;;;;;;;"),
        ];
        for (command, line) in cases {
            assert_eq!(command.line(), line);
            assert_eq!(command.line().matches(';').count(), 12);
        }
    }

    #[test]
    fn an_order_becomes_a_place_line_or_is_refused() {
        use crate::trading::fixed::Qty;
        use crate::trading::instrument::Symbol;
        use crate::trading::order::NewOrder;
        let order = |qty: &str, order_type, tif, limit: Option<&str>| {
            let new = NewOrder {
                account: "live".into(),
                symbol: Symbol::parse("ES").unwrap(),
                side: Side::Buy,
                qty: Qty(Fixed::parse(qty).unwrap()),
                order_type,
                limit_price: limit.map(px),
                stop_price: None,
                tif,
                client_order_id: None,
            };
            Order::new(7, new, chrono::DateTime::UNIX_EPOCH)
        };
        let line = |o: &Order| Command::place(o, "Sim101", "ES 03-27", "sov-7").map(|c| c.line());
        assert_eq!(
            line(&order("2", OrderType::Market, Tif::Ioc, None)).unwrap(),
            "PLACE;Sim101;ES 03-27;BUY;2;MARKET;;;DAY;;sov-7;;"
        );
        assert_eq!(
            line(&order("1", OrderType::Limit, Tif::Gtc, Some("5000"))).unwrap(),
            "PLACE;Sim101;ES 03-27;BUY;1;LIMIT;5000;;GTC;;sov-7;;"
        );
        for refused in [
            order("1", OrderType::Limit, Tif::Ioc, Some("5000")),
            order("1", OrderType::Market, Tif::Fok, None),
            order("1.5", OrderType::Market, Tif::Day, None),
        ] {
            assert_eq!(line(&refused).unwrap_err().code, "venue_unsupported");
        }
    }

    #[test]
    fn lines_read_back_as_written_and_bad_ones_are_refused() {
        let place = Command::Place {
            account: "Sim101".into(),
            instrument: "ES 03-27".into(),
            side: Side::Sell,
            qty: 3,
            order_type: OrderType::Stop,
            limit: None,
            stop: Some(px("4990.5")),
            gtc: false,
            order_id: "sov-9".into(),
        };
        for c in [
            place,
            Command::Cancel {
                order_id: "sov-9".into(),
            },
            Command::Change {
                order_id: "sov-9".into(),
                qty: Some(2),
                limit: None,
                stop: Some(px("4991")),
            },
            Command::ClosePosition {
                account: "Sim101".into(),
                instrument: "ES 03-27".into(),
            },
            Command::CancelAllOrders,
            Command::FlattenEverything,
        ] {
            assert_eq!(Command::parse(&c.line()).unwrap(), c, "{}", c.line());
        }
        assert!(matches!(
            Command::parse("place;Sim101;ES 03-27;buy;1;stopmarket;;4990;gtc;;x;;\r\n").unwrap(),
            Command::Place {
                order_type: OrderType::Stop,
                gtc: true,
                ..
            }
        ));
        assert_eq!(
            Command::parse("CANCELALLORDERS").unwrap(),
            Command::CancelAllOrders
        );
        for bad in [
            "",
            "DANCE;;;;;;;;;;;;",
            "PLACE;;ES 03-27;BUY;1;MARKET;;;DAY;;x;;",
            "PLACE;Sim101;ES 03-27;HOLD;1;MARKET;;;DAY;;x;;",
            "PLACE;Sim101;ES 03-27;BUY;0;MARKET;;;DAY;;x;;",
            "PLACE;Sim101;ES 03-27;BUY;1.5;MARKET;;;DAY;;x;;",
            "PLACE;Sim101;ES 03-27;BUY;1;LIMIT;;;DAY;;x;;",
            "PLACE;Sim101;ES 03-27;BUY;1;MARKET;;;IOC;;x;;",
            "PLACE;Sim101;ES 03-27;BUY;1;LIMIT;abc;;DAY;;x;;",
            "CANCEL;;;;;;;;;;;;",
            "PLACE;Sim101;ES 03-27;BUY;1;MARKET;;;DAY;;x;;;extra",
        ] {
            assert_eq!(
                Command::parse(bad).unwrap_err().code,
                "malformed_oif",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn decimals_are_read_as_ninjatrader_writes_them() {
        for (text, want) in [
            ("4250.25", Some("4250.25")),
            ("4250,25", Some("4250.25")),
            (" 0 ", Some("0")),
            ("4250.333333333333", Some("4250.33333333")),
            ("0.000000005", Some("0")),
            ("0.000000015", Some("0.00000002")),
            ("0.0000000051", Some("0.00000001")),
            ("-3.5", Some("-3.5")),
            ("", None),
            (".", None),
            ("1e3", None),
            ("12a", None),
        ] {
            let got = parse_decimal(text).map(|f| f.to_string());
            assert_eq!(got.as_deref(), want, "{text:?}");
        }
    }

    #[test]
    fn order_state_files_are_read_or_refused_with_a_code() {
        let r = parse_order_state("PartFilled;2;4250.375\r\n").unwrap();
        assert_eq!((r.state, r.filled), (OrderState::PartFilled, 2));
        assert_eq!(r.avg_price.to_string(), "4250.375");
        assert_eq!(
            parse_order_state("WORKING;0;0").unwrap().state,
            OrderState::Working
        );
        for (text, code) in [
            ("", "malformed_order_state"),
            ("FILLED;1", "malformed_order_state"),
            ("FILLED;1;2;3", "malformed_order_state"),
            ("EXPLODED;1;4250", "unknown_order_state"),
            ("FILLED;1.5;4250", "malformed_order_state"),
            ("FILLED;-1;4250", "malformed_order_state"),
            ("FILLED;1;abc", "malformed_order_state"),
        ] {
            assert_eq!(parse_order_state(text).unwrap_err().code, code, "{text:?}");
        }
    }

    #[test]
    fn cumulative_readings_become_exact_increments() {
        let tick = px("0.25");
        let f = |s: &str| Fixed::parse(s).unwrap();
        // First fill: on the tick.
        assert_eq!(
            increment((0, f("0")), (1, f("4250.25")), tick).unwrap(),
            Some((Qty(f("1")), px("4250.25")))
        );
        // A second fill at 4250.5 after 1 @ 4250.25: the average NinjaTrader writes is a float.
        let avg = parse_decimal("4250.41666666667").unwrap();
        assert_eq!(
            increment((2, f("4250.375")), (3, avg), tick).unwrap(),
            Some((Qty(f("1")), px("4250.5")))
        );
        // Two fills between readings: their average, which may be off the tick.
        assert_eq!(
            increment((0, f("0")), (2, f("4250.375")), tick).unwrap(),
            Some((Qty(f("2")), px("4250.375")))
        );
        assert_eq!(increment((2, f("1")), (2, f("1")), tick).unwrap(), None);
        assert_eq!(
            increment((3, f("1")), (1, f("1")), tick).unwrap_err().code,
            "filled_went_back"
        );
    }

    #[test]
    fn position_and_connection_files() {
        let p = parse_position("LONG;2;4250.25").unwrap();
        assert_eq!((p.qty, p.avg_price.to_string()), (2, "4250.25".to_string()));
        assert_eq!(parse_position("SHORT;3;100").unwrap().qty, -3);
        assert_eq!(parse_position("FLAT;0;0").unwrap().qty, 0);
        for bad in ["SIDEWAYS;1;1", "LONG;x;1", "LONG;1", "LONG;1.5;1"] {
            assert_eq!(
                parse_position(bad).unwrap_err().code,
                "malformed_position",
                "{bad}"
            );
        }
        assert_eq!(
            position_file_instrument("ES 03-27 Globex_Sim101_Position.txt", "Sim101"),
            Some("ES 03-27 Globex")
        );
        assert_eq!(
            position_file_instrument("ES 03-27 Globex_Sim1010_Position.txt", "Sim101"),
            None
        );
        assert_eq!(position_file_instrument("sov-1.txt", "Sim101"), None);
        assert!(parse_connection("CONNECTED\r\n").unwrap());
        assert!(!parse_connection("disconnected").unwrap());
        assert!(parse_connection("MAYBE").is_err());
    }

    #[test]
    fn the_front_month_rolls_on_the_second_thursday() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        for (date, want) in [
            (d(2026, 12, 2), "ES 12-26"),
            // December 2026: the second Thursday is the 10th.
            (d(2026, 12, 9), "ES 12-26"),
            (d(2026, 12, 10), "ES 03-27"),
            (d(2026, 12, 31), "ES 03-27"),
            (d(2027, 1, 15), "ES 03-27"),
            // March 2027: the second Thursday is the 11th.
            (d(2027, 3, 10), "ES 03-27"),
            (d(2027, 3, 11), "ES 06-27"),
            (d(2027, 4, 1), "ES 06-27"),
            (d(2027, 9, 8), "ES 09-27"),
            (d(2027, 9, 9), "ES 12-27"),
            (d(2099, 12, 31), "ES 03-00"),
        ] {
            assert_eq!(front_month("ES", date).as_deref(), Some(want), "{date}");
        }
    }

    proptest::proptest! {
        /// NinjaTrader keeps the average as a double and writes it with up to 15 significant
        /// digits; reading each state file after each fill gives back every fill exactly.
        #[test]
        fn each_fill_is_recovered_from_the_float_averages(
            fills in proptest::collection::vec((1i64..4, 0i64..400), 1..12),
        ) {
            let tick = px("0.25");
            let (mut filled, mut notional) = (0i64, 0f64);
            let mut before = (0i64, Fixed::ZERO);
            for (qty, ticks) in fills {
                let price = 4000.0 + ticks as f64 * 0.25;
                filled += qty;
                notional += price * qty as f64;
                let written = format!("{:.15}", notional / filled as f64);
                let after = (filled, parse_decimal(&written).unwrap());
                let (got_qty, got_price) = increment(before, after, tick).unwrap().unwrap();
                proptest::prop_assert_eq!(got_qty, Qty(Fixed::from_int(qty).unwrap()));
                proptest::prop_assert_eq!(got_price.to_string(), Fixed::from_raw(400_000_000_000 + ticks * 25_000_000).to_string());
                before = after;
            }
        }
    }
}
