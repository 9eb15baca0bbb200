//! Which orders, fills and positions each recent change of the OMS touched, by the change's
//! place in the trading streams (`seq` 1, 2, …): what a stream needs to say what changed since a
//! point, read from the OMS as it stands then, without keeping a copy of any order.
//!
//! A conflated stream asks once per window ("what changed after the seq I sent last?") and a
//! reconnecting one once ("after my `Last-Event-ID`?"); the answer names each order and position
//! once, in the order of its last change, and the range of new fills. The log keeps the last
//! `capacity` entries (a few bytes each); asking after a seq whose entries are gone answers
//! `None`, and the stream says `reset`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Range;

use crate::trading::instrument::Symbol;
use crate::trading::oms::Event;

/// One thing a change touched, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Order(u64),
    /// A fill, by its index in the OMS's fills.
    Fill(usize),
    /// A position, by its index in [`ChangeLog::keys`].
    Position(u32),
}

/// One thing a change touched, as told to [`ChangeLog::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch<'a> {
    Order(u64),
    /// A fill by its index in the OMS's fills; it moves its account's position in the symbol.
    Fill(usize, &'a str, &'a Symbol),
    Position(&'a str, &'a Symbol),
}

/// What `events` touched, once the OMS has applied them and holds `fill_count` fills (theirs
/// are the last).
pub fn touches(events: &[Event], fill_count: usize) -> impl Iterator<Item = Touch<'_>> {
    let theirs = events
        .iter()
        .filter(|e| matches!(e, Event::Filled(_)))
        .count();
    let mut fill = fill_count.saturating_sub(theirs);
    events.iter().filter_map(move |e| match e {
        Event::OrderCreated(o) => Some(Touch::Order(o.id)),
        Event::OrderUpdated { order_id, .. } => Some(Touch::Order(*order_id)),
        Event::Filled(f) => {
            fill += 1;
            Some(Touch::Fill(fill - 1, &f.account, &f.symbol))
        }
        Event::Adjusted {
            account, symbol, ..
        } => Some(Touch::Position(account, symbol)),
        Event::StateChanged { .. } | Event::Mark { .. } => None,
    })
}

/// What changed after one seq, through another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed<'a> {
    /// The seq of the last change it covers.
    pub to: u64,
    /// The orders, each once, in the order of their last change (the newest `kept`).
    pub orders: Vec<u64>,
    /// The fills' indexes (the newest `kept`).
    pub fills: Range<usize>,
    /// The positions (account, symbol), each once, in the order of their last change.
    pub positions: Vec<(&'a str, &'a Symbol)>,
}

/// The recent changes, newest last.
#[derive(Debug)]
pub struct ChangeLog {
    /// The newest change's seq (0: none yet).
    seq: u64,
    /// Every entry of the changes after this seq is still here.
    whole_after: u64,
    entries: VecDeque<(u64, Entry)>,
    capacity: usize,
    /// Each position ever touched, once (a change names it by index).
    keys: Vec<(String, Symbol)>,
    index: HashMap<Symbol, Vec<u32>>,
}

impl ChangeLog {
    /// A log keeping about the last `capacity` entries (never fewer than the newest change's).
    pub fn new(capacity: usize) -> ChangeLog {
        ChangeLog {
            seq: 0,
            whole_after: 0,
            entries: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity: capacity.max(1),
            keys: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// The newest change's seq.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Record one change; its seq, or `None` when it touched nothing a stream shows (no seq is
    /// used then).
    pub fn record<'a>(&mut self, touched: impl IntoIterator<Item = Touch<'a>>) -> Option<u64> {
        let seq = self.seq + 1;
        let start = self.entries.len();
        for t in touched {
            let entry = match t {
                Touch::Order(id) => Entry::Order(id),
                Touch::Fill(i, account, symbol) => {
                    self.entries.push_back((seq, Entry::Fill(i)));
                    Entry::Position(self.key(account, symbol))
                }
                Touch::Position(account, symbol) => Entry::Position(self.key(account, symbol)),
            };
            // An order created and updated at once is one entry.
            if self.entries.back() != Some(&(seq, entry)) {
                self.entries.push_back((seq, entry));
            }
        }
        if self.entries.len() == start {
            return None;
        }
        self.seq = seq;
        while self.entries.len() > self.capacity {
            match self.entries.front() {
                Some(&(s, _)) if s < seq => {
                    self.entries.pop_front();
                    self.whole_after = s;
                }
                _ => break,
            }
        }
        Some(seq)
    }

    /// The index of a position's key, added when new.
    fn key(&mut self, account: &str, symbol: &Symbol) -> u32 {
        let keys = &self.keys;
        if let Some(&i) = self.index.get(symbol).and_then(|of_symbol| {
            of_symbol
                .iter()
                .find(|&&i| keys.get(i as usize).is_some_and(|k| k.0 == account))
        }) {
            return i;
        }
        let i = u32::try_from(self.keys.len()).unwrap_or(u32::MAX);
        self.keys.push((account.to_string(), symbol.clone()));
        self.index.entry(symbol.clone()).or_default().push(i);
        i
    }

    /// What changed after `after` through `through` (`None`: the newest change), with at most
    /// `kept` orders and fills (the newest); `None` when `after` is older than what is kept, or
    /// newer than the newest change (not a seq of this log).
    pub fn since(&self, after: u64, through: Option<u64>, kept: usize) -> Option<Changed<'_>> {
        if after < self.whole_after || after > self.seq {
            return None;
        }
        let to = through.map_or(self.seq, |t| t.min(self.seq)).max(after);
        let mut orders = Vec::new();
        let mut seen_orders = HashSet::new();
        let mut positions = Vec::new();
        let mut seen_positions = HashSet::new();
        let (mut first_fill, mut end_fill) = (usize::MAX, 0);
        let newest_first = self.entries.iter().rev();
        for &(_, entry) in newest_first
            .skip_while(|(s, _)| *s > to)
            .take_while(|(s, _)| *s > after)
        {
            match entry {
                Entry::Order(id) => {
                    if orders.len() < kept && seen_orders.insert(id) {
                        orders.push(id);
                    }
                }
                Entry::Fill(i) => {
                    first_fill = first_fill.min(i);
                    end_fill = end_fill.max(i + 1);
                }
                Entry::Position(k) => {
                    if let Some((account, symbol)) = self.keys.get(k as usize) {
                        if seen_positions.insert(k) {
                            positions.push((account.as_str(), symbol));
                        }
                    }
                }
            }
        }
        orders.reverse();
        positions.reverse();
        let fills = if end_fill == 0 {
            0..0
        } else {
            first_fill.max(end_fill.saturating_sub(kept))..end_fill
        };
        Some(Changed {
            to,
            orders,
            fills,
            positions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).expect("a symbol")
    }

    #[test]
    fn a_change_is_told_as_the_latest_of_each_order_and_position_and_the_new_fills() {
        let (es, nq) = (sym("ES"), sym("NQ"));
        let mut log = ChangeLog::new(100);
        assert_eq!(log.record([]), None, "nothing touched: no seq");
        assert_eq!(log.record([Touch::Order(1)]), Some(1));
        assert_eq!(
            log.record([
                Touch::Order(2),
                Touch::Order(2),
                Touch::Fill(0, "a", &es),
                Touch::Order(1),
            ]),
            Some(2)
        );
        assert_eq!(
            log.record([Touch::Fill(1, "b", &nq), Touch::Fill(2, "a", &es)]),
            Some(3)
        );
        assert_eq!(log.record([Touch::Position("b", &nq)]), Some(4));
        assert_eq!(log.seq(), 4);
        type Case<'a> = (
            u64,
            Option<u64>,
            usize,
            Vec<u64>,
            Range<usize>,
            Vec<(&'a str, &'a str)>,
        );
        let cases: Vec<Case> = vec![
            // Everything: order 2 before 1 (1 changed last), a before b (b changed last).
            (
                0,
                None,
                100,
                vec![2, 1],
                0..3,
                vec![("a", "ES"), ("b", "NQ")],
            ),
            // Only the newest `kept` orders and fills.
            (0, None, 1, vec![1], 2..3, vec![("a", "ES"), ("b", "NQ")]),
            (
                1,
                None,
                100,
                vec![2, 1],
                0..3,
                vec![("a", "ES"), ("b", "NQ")],
            ),
            (2, None, 100, vec![], 1..3, vec![("a", "ES"), ("b", "NQ")]),
            (3, None, 100, vec![], 0..0, vec![("b", "NQ")]),
            (4, None, 100, vec![], 0..0, vec![]),
            // Through a seq: later changes left out.
            (0, Some(1), 100, vec![1], 0..0, vec![]),
            (1, Some(2), 100, vec![2, 1], 0..1, vec![("a", "ES")]),
            (
                2,
                Some(3),
                100,
                vec![],
                1..3,
                vec![("b", "NQ"), ("a", "ES")],
            ),
            (3, Some(99), 100, vec![], 0..0, vec![("b", "NQ")]),
            // Through before after: nothing.
            (3, Some(1), 100, vec![], 0..0, vec![]),
        ];
        for (after, through, kept, orders, fills, positions) in cases {
            let got = log.since(after, through, kept).expect("kept");
            let got_positions: Vec<(&str, &str)> = got
                .positions
                .iter()
                .map(|(a, s)| (*a, s.as_str()))
                .collect();
            assert_eq!(
                (got.orders, got.fills, got_positions),
                (orders, fills, positions),
                "after {after} through {through:?} kept {kept}"
            );
            assert_eq!(got.to, through.map_or(4, |t| t.min(4)).max(after));
        }
        assert_eq!(log.since(5, None, 100), None, "a seq not given yet");
    }

    #[test]
    fn what_is_no_longer_kept_is_told_as_gone_but_the_newest_change_always_is() {
        let mut log = ChangeLog::new(3);
        for id in 1..=3 {
            log.record([Touch::Order(id)]);
        }
        assert!(log.since(0, None, 10).is_some());
        log.record([Touch::Order(4)]);
        assert_eq!(log.since(0, None, 10), None, "order 1's change is gone");
        assert_eq!(
            log.since(1, None, 10).map(|c| c.orders),
            Some(vec![2, 3, 4])
        );
        // A change larger than the log is kept whole.
        log.record((10..20).map(Touch::Order));
        assert_eq!(log.since(4, None, 100).map(|c| c.orders.len()), Some(10));
        assert_eq!(log.since(3, None, 100), None);
    }

    #[test]
    fn events_touch_their_orders_fills_and_positions() {
        use crate::trading::fixed::{Fixed, Money, Price, Qty};
        use crate::trading::oms::FillRecord;
        use crate::trading::order::Side;
        let at = chrono::DateTime::UNIX_EPOCH;
        let fill = |order_id: u64, account: &str| {
            Event::Filled(FillRecord {
                fill_id: order_id,
                order_id,
                account: account.into(),
                symbol: sym("ES"),
                side: Side::Buy,
                qty: Qty(Fixed::ONE),
                price: Price(Fixed::ONE),
                commission: Money::ZERO,
                realized_pnl: Money::ZERO,
                at,
                exec_id: None,
            })
        };
        let es = sym("ES");
        let events = vec![
            Event::OrderUpdated {
                order_id: 7,
                update: crate::trading::order::OrderUpdate::Triggered,
                at,
            },
            fill(7, "a"),
            Event::Mark {
                symbol: sym("ES"),
                quote: Default::default(),
                external: false,
                at,
            },
            fill(8, "b"),
            Event::Adjusted {
                account: "c".into(),
                symbol: sym("ES"),
                qty: Qty(Fixed::ONE),
                avg_price: Price(Fixed::ONE),
                at,
            },
        ];
        let got: Vec<Touch> = touches(&events, 42).collect();
        assert_eq!(
            got,
            [
                Touch::Order(7),
                Touch::Fill(40, "a", &es),
                Touch::Fill(41, "b", &es),
                Touch::Position("c", &es),
            ]
        );
    }

    /// A change as the model keeps it: orders, fills (index, position), positions.
    #[derive(Debug, Clone)]
    enum T {
        Order(u64),
        Fill(u8),
        Position(u8),
    }

    proptest! {
        /// Against a model that keeps every change: whatever the log answers is exactly the
        /// model's answer, and it answers whenever what was asked for fits in its capacity.
        #[test]
        fn the_log_tells_what_a_full_history_would(
            changes in proptest::collection::vec(
                proptest::collection::vec(
                    prop_oneof![
                        (1u64..6).prop_map(T::Order),
                        (0u8..4).prop_map(T::Fill),
                        (0u8..4).prop_map(T::Position),
                    ],
                    0..5,
                ),
                0..30,
            ),
            capacity in 1usize..12,
            asks in proptest::collection::vec((0u64..32, proptest::option::of(0u64..32), 1usize..4), 1..8),
        ) {
            let keys: Vec<(String, Symbol)> = (0..4)
                .map(|k| (format!("acct{}", k % 2), sym(if k < 2 { "ES" } else { "NQ" })))
                .collect();
            let mut log = ChangeLog::new(capacity);
            // (seq, order ids, fill indexes, position keys) of each change with a seq.
            let mut model: Vec<(u64, Vec<T>, Vec<usize>)> = Vec::new();
            let mut fills = 0usize;
            for change in &changes {
                let mut indexes = Vec::new();
                let touched: Vec<Touch> = change
                    .iter()
                    .map(|t| match t {
                        T::Order(id) => Touch::Order(*id),
                        T::Fill(k) => {
                            indexes.push(fills);
                            fills += 1;
                            let (a, s) = &keys[*k as usize];
                            Touch::Fill(fills - 1, a, s)
                        }
                        T::Position(k) => {
                            let (a, s) = &keys[*k as usize];
                            Touch::Position(a, s)
                        }
                    })
                    .collect();
                let seq = log.record(touched);
                prop_assert_eq!(seq.is_some(), !change.is_empty());
                if let Some(seq) = seq {
                    model.push((seq, change.clone(), indexes));
                }
            }
            for (after, through, kept) in asks {
                let got = log.since(after, through, kept);
                let newest = model.last().map_or(0, |m| m.0);
                if after > newest {
                    prop_assert!(got.is_none());
                    continue;
                }
                let to = through.map_or(newest, |t| t.min(newest)).max(after);
                let within: Vec<&(u64, Vec<T>, Vec<usize>)> =
                    model.iter().filter(|m| m.0 > after && m.0 <= to).collect();
                let mut orders: Vec<u64> = Vec::new();
                let mut positions: Vec<(&str, &str)> = Vec::new();
                let mut fill_indexes: Vec<usize> = Vec::new();
                for (_, change, indexes) in &within {
                    fill_indexes.extend(indexes);
                    for t in change {
                        let key = match t {
                            T::Order(id) => {
                                orders.retain(|o| o != id);
                                orders.push(*id);
                                continue;
                            }
                            T::Fill(k) | T::Position(k) => {
                                let (a, s) = &keys[*k as usize];
                                (a.as_str(), s.as_str())
                            }
                        };
                        positions.retain(|p| *p != key);
                        positions.push(key);
                    }
                }
                let orders = orders[orders.len().saturating_sub(kept)..].to_vec();
                let fills_want = fill_indexes[fill_indexes.len().saturating_sub(kept)..].to_vec();
                // What the log must still hold to answer: every entry after `after`.
                let entries_after: usize = model
                    .iter()
                    .filter(|m| m.0 > after)
                    .map(|m| m.1.len() + m.1.iter().filter(|t| matches!(t, T::Fill(_))).count())
                    .sum();
                match got {
                    None => prop_assert!(entries_after > capacity, "gone though {entries_after} entries fit"),
                    Some(c) => {
                        prop_assert_eq!(c.to, to);
                        prop_assert_eq!(c.orders, orders);
                        prop_assert_eq!(c.fills.collect::<Vec<_>>(), fills_want);
                        let got_positions: Vec<(&str, &str)> =
                            c.positions.iter().map(|(a, s)| (*a, s.as_str())).collect();
                        prop_assert_eq!(got_positions, positions);
                    }
                }
            }
        }
    }
}
