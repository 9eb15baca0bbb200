//! A stage's gate, judged the way Argo Rollouts judges an AnalysisRun.
//!
//! Each check is measured again and again; every measurement is a success, a failure, an
//! inconclusive value (between the check's pass and fail conditions), or an error (the check
//! could not measure: a metrics URL down, a missing field, a command that would not start). A
//! check passes after `count` successes; it fails after more than `failure_limit` failures in
//! all, or after `consecutive_failures` failures in a row (a P0 check's default is 1: roll back
//! at once; a P1's is 3), or after more than `consecutive_error_limit` errors in a row; it is
//! inconclusive (the rollout pauses for a person) after more than `inconclusive_limit`
//! inconclusive measurements. A success clears the runs of failures and errors. The gate passes
//! when every check has passed; it fails or pauses as soon as one check does.
//!
//! Conditions compare what a check read with a value: numbers exactly, as decimal text (never
//! through a float), strings and booleans by equality.

use std::cmp::Ordering;

use serde_json::Value;

use crate::error::Invalid;

/// How urgent a failing check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Roll back at once (by default, the first failure).
    P0,
    /// Roll back after a run of failures (by default, three in a row).
    P1,
}

impl Severity {
    pub fn parse(field: &str, text: &str) -> Result<Severity, Invalid> {
        match text.trim() {
            "P0" | "p0" => Ok(Severity::P0),
            "P1" | "p1" => Ok(Severity::P1),
            other => Err(Invalid::new(
                "invalid_severity",
                field,
                format!("severity {other:?} must be \"P0\" or \"P1\""),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::P0 => "P0",
            Severity::P1 => "P1",
        }
    }

    /// Failures in a row that fail a check of this severity, unless the check says otherwise.
    pub fn default_consecutive_failures(self) -> u32 {
        match self {
            Severity::P0 => 1,
            Severity::P1 => 3,
        }
    }
}

/// When one check passes, fails or pauses the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub severity: Severity,
    /// Successful measurements the check needs.
    pub count: u32,
    /// Failed measurements tolerated in all (one more fails the check); `None`: no such limit.
    pub failure_limit: Option<u32>,
    /// Failed measurements in a row that fail the check.
    pub consecutive_failures: u32,
    /// Errors in a row tolerated (one more fails the check), as Argo's default: 4.
    pub consecutive_error_limit: u32,
    /// Inconclusive measurements tolerated (one more pauses the rollout), as Argo's default: 0.
    pub inconclusive_limit: u32,
}

impl Rules {
    /// The defaults of a check of `severity`: one success, the severity's run of failures, no
    /// limit on failures in all, four errors in a row tolerated, no inconclusive one.
    pub fn of(severity: Severity) -> Rules {
        Rules {
            severity,
            count: 1,
            failure_limit: None,
            consecutive_failures: severity.default_consecutive_failures(),
            consecutive_error_limit: 4,
            inconclusive_limit: 0,
        }
    }
}

/// What one measurement found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measurement {
    Success,
    Failure,
    /// Between the pass and the fail condition: a person decides.
    Inconclusive,
    /// The check could not measure.
    Error,
}

impl Measurement {
    pub fn as_str(self) -> &'static str {
        match self {
            Measurement::Success => "success",
            Measurement::Failure => "failure",
            Measurement::Inconclusive => "inconclusive",
            Measurement::Error => "error",
        }
    }
}

/// Why a check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedBy {
    /// More failures in all than `failure_limit`.
    FailureLimit,
    /// `consecutive_failures` failures in a row.
    ConsecutiveFailures,
    /// More errors in a row than `consecutive_error_limit`.
    ConsecutiveErrors,
}

impl FailedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            FailedBy::FailureLimit => "failure_limit",
            FailedBy::ConsecutiveFailures => "consecutive_failures",
            FailedBy::ConsecutiveErrors => "consecutive_errors",
        }
    }
}

/// A check's settled verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed(FailedBy),
    Inconclusive,
}

/// One check's measurements so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub successes: u32,
    pub failures: u32,
    pub errors: u32,
    pub inconclusive: u32,
    pub failures_in_a_row: u32,
    pub errors_in_a_row: u32,
    pub verdict: Option<Verdict>,
}

impl Tally {
    /// Count `m`; the verdict once the check has one (a settled check counts nothing more).
    pub fn record(&mut self, rules: &Rules, m: Measurement) -> Option<Verdict> {
        if self.verdict.is_some() {
            return self.verdict;
        }
        self.verdict = match m {
            Measurement::Success => {
                self.successes += 1;
                self.failures_in_a_row = 0;
                self.errors_in_a_row = 0;
                (self.successes >= rules.count).then_some(Verdict::Passed)
            }
            Measurement::Failure => {
                self.failures += 1;
                self.failures_in_a_row += 1;
                self.errors_in_a_row = 0;
                if rules.failure_limit.is_some_and(|l| self.failures > l) {
                    Some(Verdict::Failed(FailedBy::FailureLimit))
                } else if self.failures_in_a_row >= rules.consecutive_failures {
                    Some(Verdict::Failed(FailedBy::ConsecutiveFailures))
                } else {
                    None
                }
            }
            Measurement::Error => {
                self.errors += 1;
                self.errors_in_a_row += 1;
                (self.errors_in_a_row > rules.consecutive_error_limit)
                    .then_some(Verdict::Failed(FailedBy::ConsecutiveErrors))
            }
            Measurement::Inconclusive => {
                self.inconclusive += 1;
                self.errors_in_a_row = 0;
                (self.inconclusive > rules.inconclusive_limit).then_some(Verdict::Inconclusive)
            }
        };
        self.verdict
    }
}

/// What a gate comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateVerdict {
    /// Every check passed.
    Passed,
    /// Check `check` failed.
    Failed {
        check: usize,
        severity: Severity,
        by: FailedBy,
    },
    /// Check `check` was inconclusive: the rollout pauses for a person.
    Inconclusive { check: usize },
}

/// A stage's gate: its checks' rules and tallies.
#[derive(Debug, Clone)]
pub struct Gate {
    checks: Vec<(Rules, Tally)>,
}

impl Gate {
    pub fn new(rules: impl IntoIterator<Item = Rules>) -> Gate {
        Gate {
            checks: rules.into_iter().map(|r| (r, Tally::default())).collect(),
        }
    }

    /// The verdict with nothing measured: `Passed` for a gate without checks.
    pub fn verdict(&self) -> Option<GateVerdict> {
        let mut passed = 0;
        for (i, (rules, tally)) in self.checks.iter().enumerate() {
            match tally.verdict {
                Some(Verdict::Failed(by)) => {
                    return Some(GateVerdict::Failed {
                        check: i,
                        severity: rules.severity,
                        by,
                    })
                }
                Some(Verdict::Inconclusive) => return Some(GateVerdict::Inconclusive { check: i }),
                Some(Verdict::Passed) => passed += 1,
                None => {}
            }
        }
        (passed == self.checks.len()).then_some(GateVerdict::Passed)
    }

    /// Count a measurement of check `check`; the gate's verdict once it has one.
    pub fn record(&mut self, check: usize, m: Measurement) -> Option<GateVerdict> {
        if let Some((rules, tally)) = self.checks.get_mut(check) {
            tally.record(rules, m);
        }
        self.verdict()
    }

    /// Whether check `check` still needs measuring (it has no verdict yet).
    pub fn open(&self, check: usize) -> bool {
        self.checks
            .get(check)
            .is_some_and(|(_, t)| t.verdict.is_none())
    }

    pub fn tally(&self, check: usize) -> Option<&Tally> {
        self.checks.get(check).map(|(_, t)| t)
    }
}

/// How a condition compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// `"<= 0.01"`, `"== ok"`, `"!= false"`: what a value read by a check must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    op: Op,
    /// The value compared with, as written (a number's exact text).
    value: String,
    number: Option<Decimal>,
}

impl Condition {
    pub fn parse(field: &str, text: &str) -> Result<Condition, Invalid> {
        let t = text.trim();
        let ops = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let Some((op, rest)) = ops
            .iter()
            .find_map(|(s, op)| t.strip_prefix(s).map(|rest| (*op, rest.trim())))
        else {
            return Err(Invalid::new(
                "invalid_condition",
                field,
                format!(
                    "condition {t:?} must start with ==, !=, <, <=, > or >= (e.g. \"<= 0.01\")"
                ),
            ));
        };
        let value = rest
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or(rest)
            .to_string();
        if value.is_empty() {
            return Err(Invalid::new(
                "invalid_condition",
                field,
                format!("condition {t:?} has nothing to compare with"),
            ));
        }
        let number = Decimal::parse(&value);
        if number.is_none() && !matches!(op, Op::Eq | Op::Ne) {
            return Err(Invalid::new(
                "invalid_condition",
                field,
                format!("condition {t:?} orders by a value that is not a number"),
            ));
        }
        Ok(Condition { op, value, number })
    }

    /// Whether `v` meets the condition; `None` when it cannot be compared (a string against a
    /// number's order, an object): the check could not measure.
    pub fn holds(&self, v: &Value) -> Option<bool> {
        let ordering = match v {
            Value::Number(n) => {
                let got = Decimal::parse(&n.to_string())?;
                match &self.number {
                    Some(want) => got.cmp(want),
                    None => return self.equality(false),
                }
            }
            Value::String(s) => return self.equality(*s == self.value),
            Value::Bool(b) => {
                return self.equality(self.value == if *b { "true" } else { "false" })
            }
            Value::Null => return self.equality(self.value == "null"),
            _ => return None,
        };
        Some(match self.op {
            Op::Eq => ordering == Ordering::Equal,
            Op::Ne => ordering != Ordering::Equal,
            Op::Lt => ordering == Ordering::Less,
            Op::Le => ordering != Ordering::Greater,
            Op::Gt => ordering == Ordering::Greater,
            Op::Ge => ordering != Ordering::Less,
        })
    }

    fn equality(&self, equal: bool) -> Option<bool> {
        match self.op {
            Op::Eq => Some(equal),
            Op::Ne => Some(!equal),
            _ => None,
        }
    }
}

/// A measured value against a check's conditions: success when `pass` holds; otherwise failure
/// when there is no `fail` condition or it holds, inconclusive when it does not (the band
/// between the two); an error when the value cannot be compared.
pub fn judge(v: &Value, pass: &Condition, fail: Option<&Condition>) -> Measurement {
    match pass.holds(v) {
        None => Measurement::Error,
        Some(true) => Measurement::Success,
        Some(false) => match fail.map(|f| f.holds(v)) {
            None | Some(Some(true)) => Measurement::Failure,
            Some(Some(false)) => Measurement::Inconclusive,
            Some(None) => Measurement::Error,
        },
    }
}

/// The value at a dotted path (`data.status`, `items.0.version`) of a JSON document.
pub fn at_path<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(doc, |v, key| match v {
            Value::Object(m) => m.get(key),
            Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        })
}

/// A decimal number compared exactly: its sign, its significant digits and where its point
/// falls (`-0.0125` is negative, digits `125`, point at -1).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    /// Without leading or trailing zeros; empty for zero.
    digits: Vec<u8>,
    /// How many of `digits` stand before the point (negative: zeros after the point first).
    point: i64,
}

impl Decimal {
    /// JSON's number syntax (`-1.25e-3`), or `None`.
    fn parse(text: &str) -> Option<Decimal> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
            None => (rest, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let all: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
        let lead = all.iter().take_while(|d| **d == 0).count();
        let mut digits = all[lead..].to_vec();
        while digits.last() == Some(&0) {
            digits.pop();
        }
        let point = int.len() as i64 - lead as i64 + exponent;
        Some(Decimal {
            negative: negative && !digits.is_empty(),
            digits,
            point,
        })
    }

    fn magnitude(&self, other: &Decimal) -> Ordering {
        match (self.digits.is_empty(), other.digits.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        self.point
            .cmp(&other.point)
            .then_with(|| self.digits.cmp(&other.digits))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Decimal) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.magnitude(other),
            (true, true) => other.magnitude(self),
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Decimal) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
