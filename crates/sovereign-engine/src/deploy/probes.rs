//! One measurement of one check: an HTTP status (and a JSON field judged by its conditions), a
//! TCP connection, a command's exit status, a DNS name, a metric's value, a service's health.
//!
//! A measurement is a success, a failure, an inconclusive value, or an error — "could not
//! measure", as Argo Rollouts has it: the metric's URL did not answer, its field is missing, a
//! command could not start. A target that does not answer its own probe (an `http` or `tcp`
//! check) has failed, not errored: the target is what is measured.

use std::time::Duration;

use serde_json::Value;
use sovereign_core::deploy::analysis::{at_path, judge, Condition, Measurement};
use sovereign_core::deploy::plan::{Template, Vars};
use sovereign_core::supervise::State;

use super::settings::{Check, Probe};
use crate::supervisor::Supervisor;
use crate::support::run_program;

/// What a measurement found, and a line saying so.
#[derive(Debug, Clone)]
pub struct Measured {
    pub outcome: Measurement,
    pub detail: String,
}

fn m(outcome: Measurement, detail: impl Into<String>) -> Measured {
    Measured {
        outcome,
        detail: detail.into(),
    }
}

/// What a probe needs from the engine.
#[derive(Clone)]
pub struct Probes {
    pub http: reqwest::Client,
    pub supervisor: Supervisor,
}

fn render(t: &Template, vars: &Vars) -> Result<String, Measured> {
    t.render(vars).map_err(|name| {
        m(
            Measurement::Error,
            format!("{{{name}}} has no value (the target has no earlier version)"),
        )
    })
}

fn condition(t: &Option<Template>, what: &str, vars: &Vars) -> Result<Option<Condition>, Measured> {
    let Some(t) = t else { return Ok(None) };
    let text = render(t, vars)?;
    Condition::parse(what, &text)
        .map(Some)
        .map_err(|e| m(Measurement::Error, e.message))
}

impl Probes {
    /// Measure `check` once, within its timeout.
    pub async fn measure(&self, check: &Check, vars: &Vars<'_>) -> Measured {
        match tokio::time::timeout(check.timeout, self.probe(&check.probe, vars)).await {
            Ok(Ok(measured) | Err(measured)) => measured,
            Err(_) => {
                let outcome = match check.probe {
                    // A target that does not answer in time has failed.
                    Probe::Http { .. } | Probe::Tcp { .. } => Measurement::Failure,
                    _ => Measurement::Error,
                };
                m(outcome, format!("no answer within {:?}", check.timeout))
            }
        }
    }

    async fn probe(&self, probe: &Probe, vars: &Vars<'_>) -> Result<Measured, Measured> {
        Ok(match probe {
            Probe::Http {
                url,
                status,
                field,
                pass,
                fail,
            } => {
                let url = render(url, vars)?;
                let resp = match self.http.get(&url).send().await {
                    Ok(r) => r,
                    Err(e) => return Ok(m(Measurement::Failure, reqwest_error(&e))),
                };
                let code = resp.status().as_u16();
                let status_ok = match status {
                    Some(want) => code == *want,
                    None => resp.status().is_success(),
                };
                if !status_ok {
                    return Ok(m(Measurement::Failure, format!("HTTP {code}")));
                }
                match (field, condition(pass, "pass", vars)?) {
                    (Some(field), Some(pass)) => {
                        let fail = condition(fail, "fail", vars)?;
                        judged(resp, field, &pass, fail.as_ref(), Measurement::Failure).await
                    }
                    _ => m(Measurement::Success, format!("HTTP {code}")),
                }
            }
            Probe::Metric {
                url,
                field,
                pass,
                fail,
            } => {
                let url = render(url, vars)?;
                let pass = condition(&Some(pass.clone()), "pass", vars)?
                    .ok_or_else(|| m(Measurement::Error, "no pass condition"))?;
                let fail = condition(fail, "fail", vars)?;
                match self.http.get(&url).send().await {
                    Err(e) => m(Measurement::Error, reqwest_error(&e)),
                    Ok(r) if !r.status().is_success() => {
                        m(Measurement::Error, format!("HTTP {}", r.status().as_u16()))
                    }
                    Ok(r) => judged(r, field, &pass, fail.as_ref(), Measurement::Error).await,
                }
            }
            Probe::Tcp { address } => {
                let address = render(address, vars)?;
                match tokio::net::TcpStream::connect(&address).await {
                    Ok(_) => m(Measurement::Success, format!("connected to {address}")),
                    Err(e) => m(Measurement::Failure, format!("{address}: {e}")),
                }
            }
            Probe::Dns { host } => {
                let host = render(host, vars)?;
                let found = tokio::net::lookup_host(format!("{host}:0")).await;
                match found.map(|mut addrs| addrs.next()) {
                    Ok(Some(a)) => m(Measurement::Success, format!("{host} is {}", a.ip())),
                    Ok(None) => m(Measurement::Failure, format!("{host} has no address")),
                    Err(e) => m(Measurement::Failure, format!("{host}: {e}")),
                }
            }
            Probe::Command { argv, cwd } => {
                let argv = argv
                    .iter()
                    .map(|a| render(a, vars))
                    .collect::<Result<Vec<_>, _>>()?;
                match run_program(&argv, &[], Some(cwd), 4096).await {
                    Err(e) => m(
                        Measurement::Error,
                        format!("cannot start {:?}: {e}", argv[0]),
                    ),
                    Ok(ran) if ran.status.success() => m(Measurement::Success, "exit status 0"),
                    Ok(ran) => m(
                        Measurement::Failure,
                        match ran.status.code() {
                            Some(c) => format!("exit status {c}"),
                            None => "killed by a signal".into(),
                        },
                    ),
                }
            }
            Probe::ServiceHealth { service } => {
                let views = self.supervisor.services().await;
                match views.iter().find(|v| v.name == *service) {
                    None => m(Measurement::Error, format!("no service {service:?}")),
                    Some(v) => {
                        let detail = format!("{service} is {}", v.state.as_str());
                        match v.state {
                            State::Healthy | State::Running => m(Measurement::Success, detail),
                            // On its way up or down: not measurable yet.
                            State::Starting | State::Stopping => m(Measurement::Error, detail),
                            _ => m(Measurement::Failure, detail),
                        }
                    }
                }
            }
        })
    }
}

/// A JSON body's `field`, judged; a body or field that cannot be read is `unreadable`.
async fn judged(
    resp: reqwest::Response,
    field: &str,
    pass: &Condition,
    fail: Option<&Condition>,
    unreadable: Measurement,
) -> Measured {
    let doc: Value = match resp.json().await {
        Ok(v) => v,
        Err(e) => return m(unreadable, format!("the body is not JSON: {e}")),
    };
    match at_path(&doc, field) {
        None => m(unreadable, format!("no field {field:?} in the answer")),
        Some(v) => m(judge(v, pass, fail), format!("{field} = {v}")),
    }
}

fn reqwest_error(e: &reqwest::Error) -> String {
    let mut text = if e.is_connect() {
        "connection failed".to_string()
    } else if e.is_timeout() {
        "timed out".to_string()
    } else {
        "request failed".to_string()
    };
    if let Some(src) = std::error::Error::source(e) {
        text.push_str(": ");
        text.push_str(&crate::support::error_chain(src));
    }
    text
}

/// A probe's pace: measurements `interval` apart, the first at once.
pub fn pace(interval: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval(interval);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}
