//! Strategy signals: authenticate an alert, drop repeats, and submit the orders its strategy's
//! rule plans — through pre-trade risk like every other order.
//!
//! Repeats are caught twice: in memory within the strategy's dedup window, and (for alerts with
//! an id or time) by the orders' client order ids, which survive restarts.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::Utc;
use sovereign_core::trading::oms::Submitted;
use sovereign_core::trading::signal::Signal;
use sovereign_core::webhook::{constant_time_eq, DedupWindow};

use crate::config::StrategySettings;
use crate::executor::{Engine, EngineError};

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

/// Per-strategy dedup windows.
pub(crate) struct SignalDedup(Mutex<HashMap<String, DedupWindow>>);

impl SignalDedup {
    pub(crate) fn new<'a>(
        strategies: impl Iterator<Item = (&'a String, &'a StrategySettings)>,
    ) -> SignalDedup {
        SignalDedup(Mutex::new(
            strategies
                .map(|(n, s)| (n.clone(), DedupWindow::new(s.dedup_window)))
                .collect(),
        ))
    }

    fn admit(&self, strategy: &str, key: &str) -> bool {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get_mut(strategy)
            .is_none_or(|w| w.admit(strategy, key, Utc::now()))
    }

    /// Undo `admit` for an alert that was not carried out, so a retry is not taken for a repeat.
    fn forget(&self, strategy: &str, key: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = map.get_mut(strategy) {
            w.forget(strategy, key);
        }
    }
}

impl Engine {
    /// Check a strategy's secret (constant time). Done first, before the alert is read further.
    pub fn authenticate_signal(
        &self,
        strategy: &str,
        secret: Option<&str>,
    ) -> Result<&StrategySettings, EngineError> {
        let settings =
            self.settings
                .signals
                .get(strategy)
                .ok_or_else(|| EngineError::NotFound {
                    what: format!("strategy {strategy:?}"),
                    field: "strategy",
                })?;
        let given = secret.unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), settings.secret.as_bytes()) {
            tracing::warn!(strategy, "signal refused: wrong secret");
            self.audit(
                "signal",
                "signal.rejected",
                serde_json::json!({"strategy": strategy, "reason": "wrong or missing secret"}),
            );
            return Err(EngineError::Unauthorized {
                source_name: format!("signals/{strategy}"),
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

    pub async fn signal(
        &self,
        strategy: &str,
        req: SignalRequest,
    ) -> Result<SignalOutcome, EngineError> {
        let settings = self.authenticate_signal(strategy, req.secret.as_deref())?;
        if req.delivery.as_ref().is_some_and(|d| d.len() > 100) {
            return Err(sovereign_core::error::Invalid::new(
                "invalid_id",
                "id",
                "an alert id may be at most 100 characters",
            )
            .into());
        }
        let rule = settings.rule.clone();
        let instrument = rule
            .instrument(&req.signal.ticker, self.trading().instruments())?
            .clone();
        let key = req
            .delivery
            .as_ref()
            .map(|d| format!("{d}/{}/{:?}", req.signal.ticker, req.signal.action));
        if let Some(k) = &key {
            if !self.signal_dedup.admit(strategy, k) {
                return Ok(SignalOutcome {
                    duplicate: true,
                    orders: Vec::new(),
                });
            }
        }
        let signal = req.signal;
        let client_id = key.as_ref().map(|k| format!("sig:{strategy}:{k}"));
        let placed = self
            .trading()
            .submit_planned(Box::new(move |oms| {
                let position = oms.position_qty(&rule.account, &instrument.symbol);
                let mut orders = rule.plan(&signal, &instrument, position)?;
                for (i, o) in orders.iter_mut().enumerate() {
                    o.client_order_id = client_id.as_ref().map(|c| format!("{c}:{i}"));
                }
                Ok(orders)
            }))
            .await;
        let orders = match placed {
            Ok(orders) => orders,
            Err(e) => {
                if let Some(k) = &key {
                    self.signal_dedup.forget(strategy, k);
                }
                return Err(e.into());
            }
        };
        let duplicate = !orders.is_empty() && orders.iter().all(|o| o.duplicate);
        Ok(SignalOutcome { duplicate, orders })
    }
}
