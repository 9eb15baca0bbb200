//! `sovereign replay`: feed recorded ticks from a CSV file to a running engine
//! (`POST /api/market/ticks`), paced as recorded or as fast as the engine takes them.
//!
//! Validate first, act later: [`parse`] reads and checks every row and [`plan`] cuts the send
//! batches before the first request, so a bad row sends nothing. Both are pure; only [`run`]
//! touches the file, the clock and the network. Prices stay the file's own text: this module
//! checks that they are exact decimals and never does arithmetic on them. It must not know
//! instruments (symbols, tick sizes): the engine judges those and refuses a batch whole.
//!
//! The CSV is deliberately tiny: a header naming columns from `ts,symbol,price,bid,ask,size`
//! (the first three required, any order), comma-separated fields, no quoting.

use std::io::IsTerminal;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::{json, Map, Value};
use sovereign_core::trading::fixed::Fixed;
use sovereign_core::trading::instrument::Symbol;

use crate::client::{self, Api, ClientArgs, Reported, EXIT_FAILURE};

#[derive(Args, Clone)]
pub struct ReplayArgs {
    /// CSV with a header: ts,symbol,price[,bid,ask,size] (ts RFC 3339, no quoting).
    pub file: PathBuf,
    /// Pace: `1x` as recorded, `10x` ten times faster, `0.5x` half speed, `max` no pauses.
    #[arg(long, default_value = "1x", value_parser = Speed::parse)]
    pub speed: Speed,
    /// Most ticks per request (rows with the same ts go together; at `max`, any rows do).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch: u32,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// How fast to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// No pauses.
    Max,
    /// Recorded time divided by this factor (0.001 to 1,000,000).
    Times(f64),
}

impl Speed {
    fn parse(text: &str) -> Result<Speed, String> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        let number = t.strip_suffix(['x', 'X']).unwrap_or(t);
        match number.parse::<f64>() {
            Ok(f) if (0.001..=1_000_000.0).contains(&f) => Ok(Speed::Times(f)),
            _ => Err(format!(
                "{text:?} is not a speed: use e.g. 1x, 10x, 0.5x (0.001x to 1000000x) or max"
            )),
        }
    }
}

/// One row of the file, checked; prices as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// 1-based line in the file (the header is line 1).
    line: usize,
    ts: DateTime<Utc>,
    ts_text: String,
    symbol: String,
    price: String,
    bid: Option<String>,
    ask: Option<String>,
    size: Option<String>,
}

impl Tick {
    /// The wire form: the file's own text for every field.
    fn json(&self) -> Value {
        let mut t = Map::new();
        t.insert("symbol".into(), json!(self.symbol));
        t.insert("price".into(), json!(self.price));
        for (key, value) in [("bid", &self.bid), ("ask", &self.ask), ("size", &self.size)] {
            if let Some(v) = value {
                t.insert(key.into(), json!(v));
            }
        }
        t.insert("ts".into(), json!(self.ts_text));
        Value::Object(t)
    }
}

/// What is wrong with the file, and on which line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: usize,
    pub problem: String,
}

fn at(line: usize, problem: impl Into<String>) -> RowError {
    RowError {
        line,
        problem: problem.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    Ts,
    Symbol,
    Price,
    Bid,
    Ask,
    Size,
}

const COLUMNS: [(&str, Column); 6] = [
    ("ts", Column::Ts),
    ("symbol", Column::Symbol),
    ("price", Column::Price),
    ("bid", Column::Bid),
    ("ask", Column::Ask),
    ("size", Column::Size),
];

fn name(c: Column) -> &'static str {
    COLUMNS
        .iter()
        .find(|(_, col)| *col == c)
        .map_or("?", |(n, _)| n)
}

fn no_quotes(line: usize, text: &str) -> Result<(), RowError> {
    if text.contains('"') {
        return Err(at(
            line,
            "contains '\"': quoted fields are not supported (fields are split at every comma)",
        ));
    }
    Ok(())
}

fn header(text: &str) -> Result<Vec<Column>, RowError> {
    no_quotes(1, text)?;
    let mut columns = Vec::new();
    for (i, raw) in text.split(',').enumerate() {
        let n = raw.trim();
        let column = COLUMNS
            .iter()
            .find(|(known, _)| n.eq_ignore_ascii_case(known))
            .map(|(_, c)| *c)
            .ok_or_else(|| {
                if n.is_empty() {
                    at(1, format!("column {} has no name", i + 1))
                } else {
                    at(
                        1,
                        format!("unknown column {n:?} (known: ts, symbol, price, bid, ask, size)"),
                    )
                }
            })?;
        if columns.contains(&column) {
            return Err(at(1, format!("column {:?} appears twice", name(column))));
        }
        columns.push(column);
    }
    for required in [Column::Ts, Column::Symbol, Column::Price] {
        if !columns.contains(&required) {
            return Err(at(
                1,
                format!(
                    "missing column {:?} (the header needs ts, symbol and price)",
                    name(required)
                ),
            ));
        }
    }
    Ok(columns)
}

/// An exact decimal (at most 8 places), kept as written. Prices must be above 0, sizes not
/// below it.
fn decimal(line: usize, column: Column, text: &str) -> Result<String, RowError> {
    let field = name(column);
    let value = Fixed::parse(text).map_err(|e| at(line, format!("{field}: {e}")))?;
    if column == Column::Size {
        if value.is_negative() {
            return Err(at(line, format!("size {text} is negative")));
        }
    } else if !value.is_positive() {
        return Err(at(line, format!("{field} {text} is not above 0")));
    }
    Ok(text.to_string())
}

fn row(columns: &[Column], line: usize, text: &str) -> Result<Tick, RowError> {
    no_quotes(line, text)?;
    let fields: Vec<&str> = text.split(',').map(str::trim).collect();
    if fields.len() != columns.len() {
        return Err(at(
            line,
            format!(
                "{} fields, but the header names {} columns",
                fields.len(),
                columns.len()
            ),
        ));
    }
    let get = |c: Column| {
        columns
            .iter()
            .position(|x| *x == c)
            .map(|i| fields[i])
            .filter(|f| !f.is_empty())
    };
    let required = |c: Column| get(c).ok_or_else(|| at(line, format!("{} is empty", name(c))));
    let optional = |c: Column| get(c).map(|t| decimal(line, c, t)).transpose();

    let ts_text = required(Column::Ts)?;
    let ts = DateTime::parse_from_rfc3339(ts_text)
        .map_err(|e| {
            at(
                line,
                format!(
                    "ts {ts_text:?} is not an RFC 3339 time such as 2024-03-01T14:30:00Z ({e})"
                ),
            )
        })?
        .with_timezone(&Utc);
    let symbol = required(Column::Symbol)?;
    Symbol::parse(symbol).map_err(|e| at(line, e.message))?;
    Ok(Tick {
        line,
        ts,
        ts_text: ts_text.to_string(),
        symbol: symbol.to_string(),
        price: decimal(line, Column::Price, required(Column::Price)?)?,
        bid: optional(Column::Bid)?,
        ask: optional(Column::Ask)?,
        size: optional(Column::Size)?,
    })
}

/// Every tick of a file, checked, in time order (stable: rows with the same ts keep the
/// file's order). The first problem wins; blank lines are skipped.
pub fn parse(text: &str) -> Result<Vec<Tick>, RowError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let columns = match lines.next() {
        Some((_, first)) if !first.trim().is_empty() => header(first)?,
        _ => return Err(at(
            1,
            "no header: the first line must name the columns, e.g. ts,symbol,price,bid,ask,size",
        )),
    };
    let mut ticks = Vec::new();
    for (line, text) in lines {
        if !text.trim().is_empty() {
            ticks.push(row(&columns, line, text)?);
        }
    }
    if ticks.is_empty() {
        return Err(at(1, "no ticks after the header"));
    }
    ticks.sort_by_key(|t| t.ts);
    Ok(ticks)
}

/// One request: a run of ticks and when to send it, from the start of the replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub ticks: Range<usize>,
    pub at: Duration,
}

/// Cut time-ordered ticks into requests of at most `max` ticks: ticks with the same ts go
/// together, each batch due at (its ts − the first ts) / speed; at `Speed::Max`, any
/// consecutive ticks go together and nothing waits.
pub fn plan(ticks: &[Tick], speed: Speed, max: usize) -> Vec<Batch> {
    let max = max.max(1);
    let Some(first) = ticks.first() else {
        return Vec::new();
    };
    let mut batches = Vec::new();
    let mut start = 0;
    while start < ticks.len() {
        let ts = ticks[start].ts;
        let mut end = start + 1;
        while end < ticks.len() && end - start < max && (speed == Speed::Max || ticks[end].ts == ts)
        {
            end += 1;
        }
        let at = match speed {
            Speed::Max => Duration::ZERO,
            Speed::Times(factor) => {
                let since = (ts - first.ts).to_std().unwrap_or_default();
                Duration::try_from_secs_f64(since.as_secs_f64() / factor).unwrap_or(Duration::MAX)
            }
        };
        batches.push(Batch {
            ticks: start..end,
            at,
        });
        start = end;
    }
    batches
}

/// `replayed 1200/5000 ticks (24%)`, rewritten in place on a terminal.
struct Progress {
    total: usize,
    shown: Option<std::time::Instant>,
    enabled: bool,
}

impl Progress {
    fn update(&mut self, done: usize) {
        if !self.enabled {
            return;
        }
        let due = self
            .shown
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if due || done == self.total {
            eprint!(
                "\rreplayed {done}/{} ticks ({}%)",
                self.total,
                done * 100 / self.total.max(1)
            );
            self.shown = Some(std::time::Instant::now());
        }
    }

    /// Erase the progress line, so what follows starts on a clean line.
    fn clear(&mut self) {
        if self.shown.take().is_some() {
            eprint!("\r\x1b[2K");
        }
    }
}

/// The engine's refusal of a batch, naming the offending row when the engine says which
/// tick (`field: ticks[i].price`).
fn refused(ticks: &[Tick], batch: &Batch, status: reqwest::StatusCode, body: &Value) -> String {
    let err = &body["error"];
    let field = err["field"].as_str().unwrap_or_default();
    let row = field
        .strip_prefix("ticks[")
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(i, rest)| {
            let tick = ticks.get(batch.ticks.start + i.parse::<usize>().ok()?)?;
            Some(format!(
                " (row {}{})",
                tick.line,
                rest.strip_prefix('.')
                    .map(|f| format!(", {f}"))
                    .unwrap_or_default()
            ))
        });
    let error = match row {
        Some(row) => format!(
            "{}: {}{row}",
            err["code"].as_str().unwrap_or("http_error"),
            err["message"].as_str().unwrap_or(status.as_str())
        ),
        None => client::error_text(status, body),
    };
    format!(
        "the engine refused the batch of {} ticks starting at this row: {error}; {} earlier ticks were applied",
        batch.ticks.len(),
        batch.ticks.start
    )
}

pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let file = args.file.display().to_string();
    let text =
        std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {file}"))?;
    let bad = |e: RowError| Reported {
        exit: EXIT_FAILURE,
        line: format!("{file}:{}: {}", e.line, e.problem),
    };
    let ticks = parse(&text).map_err(bad)?;
    let batches = plan(&ticks, args.speed, args.batch as usize);

    client::block_on(async {
        let api = Api::new(&args.client);
        let mut progress = Progress {
            total: ticks.len(),
            shown: None,
            enabled: std::io::stderr().is_terminal(),
        };
        let started = tokio::time::Instant::now();
        for batch in &batches {
            // `sleep` saturates a deadline beyond the clock's range.
            tokio::time::sleep(batch.at.saturating_sub(started.elapsed())).await;
            let body = Value::Array(ticks[batch.ticks.clone()].iter().map(Tick::json).collect());
            let sent = api
                .send(reqwest::Method::POST, "/api/market/ticks", Some(body))
                .await;
            let problem = match sent {
                Ok((status, _)) if status.is_success() => None,
                Ok((status, body)) => Some(refused(&ticks, batch, status, &body)),
                Err(e) => Some(format!("cannot send this row's batch: {e:#}")),
            };
            if let Some(problem) = problem {
                progress.clear();
                let line = ticks[batch.ticks.start].line;
                return Err(bad(at(line, problem)).into());
            }
            progress.update(batch.ticks.end);
        }
        progress.clear();
        let seconds = started.elapsed().as_secs_f64();
        if args.client.json {
            outln!(
                "{}",
                json!({"replayed": ticks.len(), "file": file, "seconds": seconds})
            );
        } else {
            outln!(
                "replayed {} ticks from {file} in {seconds:.2} s",
                ticks.len()
            );
        }
        Ok(())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;

    const HEADER: &str = "ts,symbol,price,bid,ask,size\n";

    fn file(rows: &[&str]) -> String {
        format!("{HEADER}{}\n", rows.join("\n"))
    }

    #[test]
    fn rows_keep_their_text_and_line() {
        let ticks = parse(&file(&[
            "2024-03-01T14:30:00Z,ES,5000.10,5000.00,5000.250,3",
            "",
            "2024-03-01T14:30:01+01:00, es ,5001,,,",
        ]))
        .unwrap();
        // The +01:00 row is an hour earlier, so it sorts first.
        assert_eq!(ticks.len(), 2);
        assert_eq!(ticks[0].line, 4);
        assert_eq!(
            ticks[0].json(),
            json!({"symbol": "es", "price": "5001", "ts": "2024-03-01T14:30:01+01:00"})
        );
        assert_eq!(ticks[1].line, 2);
        assert_eq!(
            ticks[1].json(),
            json!({"symbol": "ES", "price": "5000.10", "bid": "5000.00", "ask": "5000.250",
                   "size": "3", "ts": "2024-03-01T14:30:00Z"})
        );
    }

    #[test]
    fn header_columns_in_any_order_optional_ones_absent() {
        let ticks = parse("price,ts,symbol\r\n5000,2024-03-01T14:30:00Z,NQ\r\n").unwrap();
        assert_eq!(ticks[0].json()["price"], "5000");
        assert_eq!(ticks[0].json()["symbol"], "NQ");
        assert_eq!(ticks[0].bid, None);
    }

    #[test]
    fn bad_files_name_the_line_and_the_problem() {
        let ok = "2024-03-01T14:30:00Z,ES,5000,4999.75,5000.25,1";
        // (text, line, part of the problem)
        let cases: Vec<(String, usize, &str)> = vec![
            (String::new(), 1, "no header"),
            (HEADER.to_string(), 1, "no ticks"),
            (
                "ts,symbol,price,venue\n".into(),
                1,
                "unknown column \"venue\"",
            ),
            ("ts,symbol\n".into(), 1, "missing column \"price\""),
            ("ts,symbol,price,price\n".into(), 1, "appears twice"),
            ("ts,symbol,price,\n".into(), 1, "column 4 has no name"),
            ("\"ts\",symbol,price\n".into(), 1, "quoted fields"),
            (
                file(&[ok, "2024-03-01T14:30:01Z,ES,abc,,,"]),
                3,
                "price: \"abc\" is not a decimal",
            ),
            (
                file(&[ok, "2024-03-01T14:30:01Z,ES,5000.000000001,,,"]),
                3,
                "more than 8 decimal",
            ),
            (
                file(&[ok, "2024-03-01T14:30:01Z,ES,0,,,"]),
                3,
                "price 0 is not above 0",
            ),
            (
                file(&[ok, "2024-03-01T14:30:01Z,ES,5000,-1,,"]),
                3,
                "bid -1 is not above 0",
            ),
            (
                file(&[ok, "2024-03-01T14:30:01Z,ES,5000,,x,"]),
                3,
                "ask: \"x\"",
            ),
            (
                file(&[ok, "2024-03-01T14:30:01Z,ES,5000,,,-2"]),
                3,
                "size -2 is negative",
            ),
            (
                file(&[ok, "2024-03-01 14:30,ES,5000,,,"]),
                3,
                "not an RFC 3339 time",
            ),
            (file(&[ok, ",ES,5000,,,"]), 3, "ts is empty"),
            (
                file(&[ok, "2024-03-01T14:30:01Z,,5000,,,"]),
                3,
                "symbol is empty",
            ),
            (
                file(&[ok, "2024-03-01T14:30:01Z,E S,5000,,,"]),
                3,
                "is not a symbol",
            ),
            (
                file(&[ok, "2024-03-01T14:30:01Z,ES,,,,"]),
                3,
                "price is empty",
            ),
            (
                file(&[ok, "2024-03-01T14:30:01Z,ES,5000"]),
                3,
                "3 fields, but the header names 6",
            ),
            (
                file(&[ok, "2024-03-01T14:30:01Z,\"ES\",5000,,,"]),
                3,
                "quoted fields",
            ),
            // The first bad row wins, even when a later one is bad too.
            (
                file(&[ok, ok, "x,ES,5000,,,", "y,ES,5000,,,"]),
                4,
                "ts \"x\"",
            ),
        ];
        for (text, line, part) in cases {
            let err = parse(&text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err:?}");
            assert!(
                err.problem.contains(part),
                "{text:?}: {err:?} lacks {part:?}"
            );
        }
    }

    #[test]
    fn speeds() {
        // (text, parsed)
        let cases = [
            ("max", Some(Speed::Max)),
            ("MAX", Some(Speed::Max)),
            ("1x", Some(Speed::Times(1.0))),
            ("10x", Some(Speed::Times(10.0))),
            ("0.5x", Some(Speed::Times(0.5))),
            ("3", Some(Speed::Times(3.0))),
            ("0x", None),
            ("-2x", None),
            ("NaNx", None),
            ("infx", None),
            ("fast", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(Speed::parse(text).ok(), want, "{text:?}");
        }
    }

    fn ticks_at(seconds: &[i64]) -> Vec<Tick> {
        let rows: Vec<String> = seconds
            .iter()
            .map(|s| {
                let ts = DateTime::from_timestamp(1_709_303_400 + s, 0).unwrap();
                format!("{},ES,5000,,,", ts.to_rfc3339())
            })
            .collect();
        parse(&file(&rows.iter().map(String::as_str).collect::<Vec<_>>())).unwrap()
    }

    fn cut(batches: &[Batch]) -> Vec<(Range<usize>, u128)> {
        batches
            .iter()
            .map(|b| (b.ticks.clone(), b.at.as_millis()))
            .collect()
    }

    #[test]
    fn paced_batches_group_equal_times() {
        let ticks = ticks_at(&[0, 0, 0, 1, 3, 3]);
        assert_eq!(
            cut(&plan(&ticks, Speed::Times(1.0), 100)),
            vec![(0..3, 0), (3..4, 1000), (4..6, 3000)]
        );
        assert_eq!(
            cut(&plan(&ticks, Speed::Times(10.0), 2)),
            vec![(0..2, 0), (2..3, 0), (3..4, 100), (4..6, 300)]
        );
    }

    #[test]
    fn max_speed_batches_by_count_only() {
        let ticks = ticks_at(&[0, 0, 1, 2, 3, 60, 3600]);
        assert_eq!(
            cut(&plan(&ticks, Speed::Max, 3)),
            vec![(0..3, 0), (3..6, 0), (6..7, 0)]
        );
        assert_eq!(cut(&plan(&ticks, Speed::Max, 500)), vec![(0..7, 0)]);
    }

    #[test]
    fn refusal_names_the_offending_row() {
        let ticks = ticks_at(&[0, 1, 2, 3]);
        let batch = Batch {
            ticks: 2..4,
            at: Duration::ZERO,
        };
        let body = json!({"error": {"code": "unknown_symbol", "message": "unknown symbol ZZ",
                                    "field": "ticks[1].symbol"}});
        assert_eq!(
            refused(&ticks, &batch, reqwest::StatusCode::BAD_REQUEST, &body),
            "the engine refused the batch of 2 ticks starting at this row: unknown_symbol: \
             unknown symbol ZZ (row 5, symbol); 2 earlier ticks were applied"
        );
    }
}
