//! Strategy signals: authenticate an alert, drop repeats, and submit the orders its strategy's
//! rule plans — through pre-trade risk like every other order.
//!
//! A strategy with an `allow_from` list refuses alerts from any other address before its
//! secret is looked at (on the audit trail like a wrong secret).
//!
//! An accepted signal is on the audit trail with its orders; one that risk denies raises a P1
//! alert from `signals` naming the strategy and the rule.
//!
//! Repeats are caught twice: in memory within the strategy's dedup window, and (for alerts with
//! an id or time) by the orders' client order ids, which survive restarts.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde_json::json;
use sovereign_core::error::Invalid;
use sovereign_core::notify::{truncate_chars, Alert, Priority, MAX_TITLE};
use sovereign_core::trading::oms::Submitted;
use sovereign_core::trading::signal::{Action, Signal};
use sovereign_core::webhook::{constant_time_eq, DedupWindow};

use super::settings::StrategySettings;
use super::{Trading, TradingError};
use crate::audit::Audit;
use crate::notify::Notifier;
use crate::support::{lock, once};

/// Every way a signal can be refused.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("strategy {0:?} not found")]
    UnknownStrategy(String),
    #[error("signal for {strategy:?} refused: {reason}")]
    Unauthorized {
        strategy: String,
        code: &'static str,
        reason: String,
    },
    /// The strategy has an `allow_from` list and the caller's address is not on it (code
    /// `address_not_allowed`, a 403).
    #[error("signal for {strategy:?} refused: {reason}")]
    AddressNotAllowed {
        strategy: String,
        address: IpAddr,
        reason: String,
    },
    #[error("{0}")]
    Invalid(Invalid),
    #[error("{0}")]
    Trading(TradingError),
}

impl From<Invalid> for SignalError {
    fn from(e: Invalid) -> Self {
        SignalError::Invalid(e)
    }
}

/// An alert as received.
#[derive(Debug, Clone)]
pub struct SignalRequest {
    pub secret: Option<String>,
    pub signal: Signal,
    /// The alert's `id`, else its `time`: what makes a repeat recognisable.
    pub delivery: Option<String>,
}

/// What the sender is told.
#[derive(Debug, Clone)]
pub struct SignalOutcome {
    pub duplicate: bool,
    pub orders: Vec<Submitted>,
}

/// The signals handle. Cheap to clone.
#[derive(Clone)]
pub struct Signals(Arc<Inner>);

struct Inner {
    strategies: BTreeMap<String, StrategySettings>,
    /// Per-strategy dedup windows.
    dedup: Mutex<HashMap<String, DedupWindow>>,
    trading: Trading,
    audit: Audit,
    notifier: Notifier,
}

impl Signals {
    pub fn new(
        strategies: BTreeMap<String, StrategySettings>,
        trading: Trading,
        audit: Audit,
        notifier: Notifier,
    ) -> Signals {
        let dedup = strategies
            .iter()
            .map(|(n, s)| (n.clone(), DedupWindow::new(s.dedup_window)))
            .collect();
        Signals(Arc::new(Inner {
            strategies,
            dedup: Mutex::new(dedup),
            trading,
            audit,
            notifier,
        }))
    }

    /// Check the caller's address against the strategy's `allow_from` (`from` = `None`: an
    /// in-process caller, never refused), then its secret (constant time). Done first, before
    /// the alert is read further.
    pub fn authenticate(
        &self,
        strategy: &str,
        secret: Option<&str>,
        from: Option<IpAddr>,
    ) -> Result<&StrategySettings, SignalError> {
        let settings = self
            .0
            .strategies
            .get(strategy)
            .ok_or_else(|| SignalError::UnknownStrategy(strategy.to_string()))?;
        let list = &settings.allow_from;
        if let Some(address) = from.filter(|ip| !list.is_empty() && !list.contains(*ip)) {
            let reason =
                format!("address {address} is not in the allow_from list of strategy {strategy:?}");
            tracing::warn!(strategy, %address, "signal refused: address not allowed");
            self.0.audit.record(
                "signal",
                "signal.rejected",
                serde_json::json!({"strategy": strategy, "reason": reason,
                                   "address": address.to_string()}),
            );
            return Err(SignalError::AddressNotAllowed {
                strategy: strategy.to_string(),
                address,
                reason,
            });
        }
        let given = secret.unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), settings.secret.as_bytes()) {
            tracing::warn!(strategy, "signal refused: wrong secret");
            self.0.audit.record(
                "signal",
                "signal.rejected",
                serde_json::json!({"strategy": strategy, "reason": "wrong or missing secret"}),
            );
            return Err(SignalError::Unauthorized {
                strategy: strategy.to_string(),
                code: if secret.is_none() {
                    "missing_credential"
                } else {
                    "bad_credential"
                },
                reason: "wrong or missing secret".into(),
            });
        }
        Ok(settings)
    }

    /// Authenticate the alert (`from` as for [`Signals::authenticate`]), drop a repeat, and
    /// submit what the strategy's rule plans from the position at that moment.
    pub async fn receive(
        &self,
        strategy: &str,
        req: SignalRequest,
        from: Option<IpAddr>,
    ) -> Result<SignalOutcome, SignalError> {
        let settings = self.authenticate(strategy, req.secret.as_deref(), from)?;
        if req.delivery.as_ref().is_some_and(|d| d.len() > 100) {
            return Err(Invalid::new(
                "invalid_id",
                "id",
                "an alert id may be at most 100 characters",
            )
            .into());
        }
        let rule = settings.rule.clone();
        let instrument = rule
            .instrument(&req.signal.ticker, self.0.trading.instruments())?
            .clone();
        let key = req
            .delivery
            .as_ref()
            .map(|d| format!("{d}/{}/{:?}", req.signal.ticker, req.signal.action));
        let signal = req.signal;
        let client_id = key.as_ref().map(|k| format!("sig:{strategy}:{k}"));
        let client_prefix = client_id.clone();
        let (ticker, action) = (signal.ticker.clone(), signal.action);
        let place = self.0.trading.submit_planned(Box::new(move |oms| {
            if let Some(c) = &client_id {
                // A repeat (after a restart, past the dedup window): the orders it placed then,
                // whatever the position is now.
                let placed: Vec<_> = oms
                    .orders_by_client_prefix(&rule.account, c)
                    .into_iter()
                    .map(|o| o.request.clone())
                    .collect();
                if !placed.is_empty() {
                    return Ok(placed);
                }
            }
            let position = oms.position_qty(&rule.account, &instrument.symbol);
            let mut orders = rule.plan(&signal, &instrument, position)?;
            for (i, o) in orders.iter_mut().enumerate() {
                o.client_order_id = client_id.as_ref().map(|c| format!("{c}:{i}"));
            }
            Ok(orders)
        }));
        let placed = match &key {
            Some(k) => {
                once(
                    || self.admit(strategy, k),
                    || self.forget(strategy, k),
                    place,
                )
                .await
            }
            None => Some(place.await),
        };
        let Some(placed) = placed else {
            // A repeat within the dedup window: answered with the orders the first placed.
            let (account, prefix) = (settings.rule.account.clone(), client_prefix);
            let orders = match prefix {
                Some(c) => self
                    .0
                    .trading
                    .read(move |oms| {
                        oms.orders_by_client_prefix(&account, &c)
                            .into_iter()
                            .map(|o| Submitted {
                                order: o.clone(),
                                duplicate: true,
                                denial: None,
                            })
                            .collect()
                    })
                    .await
                    .map_err(SignalError::Trading)?,
                None => Vec::new(),
            };
            return Ok(SignalOutcome {
                duplicate: true,
                orders,
            });
        };
        let orders = placed.map_err(SignalError::Trading)?;
        let duplicate = !orders.is_empty() && orders.iter().all(|o| o.duplicate);
        if !duplicate {
            self.report(strategy, &ticker, action, &orders);
        }
        Ok(SignalOutcome { duplicate, orders })
    }

    /// An accepted signal goes on the audit trail with the orders it placed; a risk denial
    /// also raises a P1 alert naming the strategy and the rule.
    fn report(&self, strategy: &str, ticker: &str, action: Action, orders: &[Submitted]) {
        let action = format!("{action:?}").to_ascii_lowercase();
        let ids: Vec<String> = orders.iter().map(|o| o.order.id.to_string()).collect();
        self.0.audit.record(
            "signal",
            "signal.accepted",
            json!({"strategy": strategy, "ticker": ticker, "action": action, "orders": ids}),
        );
        self.0.audit.checkpoint_journal();
        for o in orders {
            let Some(denial) = &o.denial else { continue };
            let code = denial.code.code();
            tracing::warn!(
                strategy,
                ticker,
                rule = code,
                "signal denied by risk: {}",
                denial.message
            );
            self.0.notifier.raise_in_background(
                Alert {
                    priority: Priority::P1,
                    source: "signals".into(),
                    title: truncate_chars(
                        &format!("{strategy}: {action} {ticker} denied by risk ({code})"),
                        MAX_TITLE,
                    ),
                    message: denial.message.clone(),
                    context: json!({"strategy": strategy, "ticker": ticker, "action": action,
                                    "rule": code, "order_id": o.order.id.to_string()}),
                    dedup_key: None,
                },
                "signals",
            );
        }
    }

    fn admit(&self, strategy: &str, key: &str) -> bool {
        lock(&self.0.dedup)
            .get_mut(strategy)
            .is_none_or(|w| w.admit(strategy, key, Utc::now()))
    }

    fn forget(&self, strategy: &str, key: &str) {
        if let Some(w) = lock(&self.0.dedup).get_mut(strategy) {
            w.forget(strategy, key);
        }
    }
}
