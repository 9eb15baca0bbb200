//! The audit trail's hash chain: records that each carry the previous record's hash, a canonical
//! encoding to hash, and a verifier that names the first record changed, removed, inserted or
//! reordered.
//!
//! Pure: hashing and checking only. Storing records, exporting them and anchoring the head are
//! the shell's work. The canonical form is the record as compact JSON with keys in sorted order
//! (`actor, at, kind, payload, prev, seq`), times as RFC 3339 UTC with microseconds; the hash is
//! SHA-256 of those bytes, hex encoded. The first record's `prev` is 64 zeros.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// Who: `operator`, `engine`, an API key's name, ….
    pub actor: String,
    /// What: `task.registered`, `trading.hardstop`, `webhook.rejected`, ….
    pub kind: String,
    pub payload: Value,
    pub prev: String,
    pub hash: String,
}

/// The bytes that are hashed.
pub fn canonical(
    seq: u64,
    at: DateTime<Utc>,
    actor: &str,
    kind: &str,
    payload: &Value,
    prev: &str,
) -> String {
    // serde_json's maps are ordered by key, so this text is the same for equal records.
    json!({
        "actor": actor,
        "at": at.to_rfc3339_opts(SecondsFormat::Micros, true),
        "kind": kind,
        "payload": payload,
        "prev": prev,
        "seq": seq,
    })
    .to_string()
}

pub fn hash_of(canonical: &str) -> String {
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

impl AuditRecord {
    /// The record that follows `prev` (or the first one), hashed.
    pub fn next(
        prev: Option<&AuditRecord>,
        at: DateTime<Utc>,
        actor: &str,
        kind: &str,
        payload: Value,
    ) -> AuditRecord {
        let (seq, prev_hash) = match prev {
            Some(p) => (p.seq + 1, p.hash.clone()),
            None => (1, GENESIS.to_string()),
        };
        let hash = hash_of(&canonical(seq, at, actor, kind, &payload, &prev_hash));
        AuditRecord {
            seq,
            at,
            actor: actor.to_string(),
            kind: kind.to_string(),
            payload,
            prev: prev_hash,
            hash,
        }
    }

    /// Whether the stored hash is the hash of the record's content.
    pub fn self_consistent(&self) -> bool {
        hash_of(&canonical(
            self.seq,
            self.at,
            &self.actor,
            &self.kind,
            &self.payload,
            &self.prev,
        )) == self.hash
    }
}

/// A record of a hash chain: its number, its link to the previous record, its own hash, and
/// whether that hash is the hash of its content. The audit trail and the trading journal are
/// both such chains, checked by the same [`verify`].
pub trait Link {
    fn seq(&self) -> u64;
    fn prev(&self) -> &str;
    fn hash(&self) -> &str;
    fn self_consistent(&self) -> bool;
}

impl Link for AuditRecord {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn prev(&self) -> &str {
        &self.prev
    }
    fn hash(&self) -> &str {
        &self.hash
    }
    fn self_consistent(&self) -> bool {
        AuditRecord::self_consistent(self)
    }
}

/// One row of the trading journal as chained. The store keeps each row's hash (32 bytes) and
/// not its link: `prev` is the previous row's hash (64 zeros before the first), as read. The
/// stored event text is hashed exactly as stored: `seq`, the time in microseconds and the kind
/// (each followed by a newline), the previous hash's 32 bytes, a newline, the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalLink {
    pub seq: u64,
    pub at_micros: i64,
    pub kind: String,
    pub payload: String,
    pub prev: String,
    pub hash: String,
}

/// A journal row's hash, as bytes.
pub type Digest = [u8; 32];

/// The hash of a journal row that follows `prev`.
pub fn journal_digest(
    seq: u64,
    at_micros: i64,
    kind: &str,
    payload: &str,
    prev: &Digest,
) -> Digest {
    let mut h = Sha256::new();
    h.update(seq.to_string().as_bytes());
    h.update(b"\n");
    h.update(at_micros.to_string().as_bytes());
    h.update(b"\n");
    h.update(kind.as_bytes());
    h.update(b"\n");
    h.update(prev);
    h.update(b"\n");
    h.update(payload.as_bytes());
    h.finalize().into()
}

/// [`journal_digest`] in hex, `prev` in hex (a malformed `prev` hashes as 64 zeros, so it cannot
/// match a real chain).
pub fn journal_hash(seq: u64, at_micros: i64, kind: &str, payload: &str, prev: &str) -> String {
    let mut p: Digest = [0; 32];
    if hex::decode_to_slice(prev, &mut p).is_err() {
        p = [0; 32];
    }
    hex::encode(journal_digest(seq, at_micros, kind, payload, &p))
}

impl Link for JournalLink {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn prev(&self) -> &str {
        &self.prev
    }
    fn hash(&self) -> &str {
        &self.hash
    }
    fn self_consistent(&self) -> bool {
        journal_hash(
            self.seq,
            self.at_micros,
            &self.kind,
            &self.payload,
            &self.prev,
        ) == self.hash
    }
}

/// The audit record kind that pins the trading journal's head (`journal_seq`, `journal_hash`)
/// into the audit trail, so an anchor of the trail covers the journal too.
pub const JOURNAL_CHECKPOINT: &str = "trading.journal_checkpoint";

/// Check the trading journal against the audit trail's checkpoints of it: every checkpointed
/// row must be there with the checkpointed hash (`journal` already verified as a chain, from
/// its first row).
pub fn check_checkpoints(journal: &[JournalLink], audit: &[AuditRecord]) -> Result<(), Tamper> {
    for r in audit.iter().filter(|r| r.kind == JOURNAL_CHECKPOINT) {
        let (Some(seq), Some(hash)) = (
            r.payload["journal_seq"].as_u64(),
            r.payload["journal_hash"].as_str(),
        ) else {
            continue;
        };
        match journal.iter().position(|j| j.seq == seq) {
            Some(p) if journal[p].hash == hash => {}
            Some(p) => {
                return Err(Tamper {
                    kind: TamperKind::Changed,
                    position: p,
                    seq,
                    message: format!(
                        "the journal up to row {seq} was rewritten: audit record {} holds another hash for it",
                        r.seq
                    ),
                })
            }
            None => {
                return Err(Tamper {
                    kind: TamperKind::Removed,
                    position: journal.len(),
                    seq,
                    message: format!(
                        "audit record {} checkpoints journal row {seq}, which is gone",
                        r.seq
                    ),
                })
            }
        }
    }
    Ok(())
}

/// What went wrong with a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TamperKind {
    /// The record's content no longer matches its hash, or (hash recomputed) the next record's link.
    Changed,
    /// One or more records before this one are missing.
    Removed,
    /// This record does not belong between its neighbours.
    Inserted,
    /// Records are out of order.
    Reordered,
    /// The chain does not end where its anchor says it did.
    HeadMismatch,
}

impl TamperKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TamperKind::Changed => "changed",
            TamperKind::Removed => "removed",
            TamperKind::Inserted => "inserted",
            TamperKind::Reordered => "reordered",
            TamperKind::HeadMismatch => "head_mismatch",
        }
    }
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tamper {
    pub kind: TamperKind,
    /// 0-based position in the checked sequence.
    pub position: usize,
    /// The sequence number the problem is reported at.
    pub seq: u64,
    pub message: String,
}

impl fmt::Display for Tamper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "record {} ({}): {}",
            self.seq,
            self.kind.as_str(),
            self.message
        )
    }
}

/// Where a verified chain ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
    pub records: usize,
}

/// Check a chain from its first record (or from `start`, the record just before `records[0]`,
/// when verifying a tail), optionally against an anchored head. Returns the head, or the first
/// problem.
pub fn verify<R: Link>(
    records: &[R],
    start: Option<(u64, &str)>,
    anchor: Option<(u64, &str)>,
) -> Result<Head, Tamper> {
    let (mut expect_seq, mut expect_prev) = match start {
        Some((seq, hash)) => (seq + 1, hash.to_string()),
        None => (1, GENESIS.to_string()),
    };
    let tamper = |kind, position: usize, seq, message: String| {
        Err(Tamper {
            kind,
            position,
            seq,
            message,
        })
    };
    for (i, r) in records.iter().enumerate() {
        if r.seq() != expect_seq {
            if r.seq() > expect_seq {
                // A gap: is a later record the missing one (reordering), or is it gone?
                if records[i..].iter().any(|x| x.seq() == expect_seq) {
                    return tamper(
                        TamperKind::Reordered,
                        i,
                        r.seq(),
                        format!("record {} comes before record {expect_seq}", r.seq()),
                    );
                }
                return tamper(
                    TamperKind::Removed,
                    i,
                    expect_seq,
                    format!("records {expect_seq}..{} are missing", r.seq() - 1),
                );
            }
            // A number seen before: one of the two was slipped in. Otherwise: out of order.
            if !records[..i].iter().any(|x| x.seq() == r.seq()) {
                return tamper(
                    TamperKind::Reordered,
                    i,
                    r.seq(),
                    format!("record {} appears after record {}", r.seq(), expect_seq - 1),
                );
            }
            return tamper(
                TamperKind::Inserted,
                i,
                r.seq(),
                format!(
                    "a record numbered {} follows record {}",
                    r.seq(),
                    expect_seq - 1
                ),
            );
        }
        if !r.self_consistent() {
            return tamper(
                TamperKind::Changed,
                i,
                r.seq(),
                "its content does not match its hash".into(),
            );
        }
        if r.prev() != expect_prev {
            // The record is whole but does not link to its predecessor: the predecessor was
            // rewritten (hash recomputed), or this record was put in its place.
            return match i.checked_sub(1) {
                Some(p) => tamper(
                    TamperKind::Changed,
                    p,
                    records[p].seq(),
                    "it was rewritten: the next record no longer links to it".into(),
                ),
                None => tamper(
                    TamperKind::Inserted,
                    i,
                    r.seq(),
                    "it does not link to the chain before it".into(),
                ),
            };
        }
        expect_prev = r.hash().to_string();
        expect_seq += 1;
    }
    let head = Head {
        seq: expect_seq - 1,
        hash: expect_prev,
        records: records.len(),
    };
    if let Some((seq, hash)) = anchor {
        let at = records.iter().position(|r| r.seq() == seq);
        match at {
            Some(p) if records[p].hash() == hash => {}
            Some(p) => {
                return tamper(
                    TamperKind::Changed,
                    p,
                    seq,
                    "its hash differs from the anchored one".into(),
                );
            }
            None if seq > head.seq => {
                return tamper(
                    TamperKind::Removed,
                    records.len(),
                    seq,
                    format!(
                        "the anchor names record {seq}, the chain ends at {}",
                        head.seq
                    ),
                );
            }
            None => {
                return tamper(
                    TamperKind::HeadMismatch,
                    records.len(),
                    seq,
                    "the anchored record is not in this chain".into(),
                )
            }
        }
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    fn chain(n: u64) -> Vec<AuditRecord> {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
        let mut v: Vec<AuditRecord> = Vec::new();
        for i in 0..n {
            let r = AuditRecord::next(
                v.last(),
                t0 + chrono::Duration::seconds(i as i64),
                "engine",
                "task.run",
                json!({"n": i}),
            );
            v.push(r);
        }
        v
    }

    fn rehash_from(v: &mut [AuditRecord], from: usize) {
        for i in from..v.len() {
            let prev = if i == 0 {
                GENESIS.to_string()
            } else {
                v[i - 1].hash.clone()
            };
            v[i].prev = prev;
            v[i].hash = hash_of(&canonical(
                v[i].seq,
                v[i].at,
                &v[i].actor,
                &v[i].kind,
                &v[i].payload,
                &v[i].prev,
            ));
        }
    }

    #[test]
    fn intact_chain_verifies_and_names_its_head() {
        let v = chain(5);
        let head = verify(&v, None, None).unwrap();
        assert_eq!((head.seq, head.records), (5, 5));
        assert_eq!(head.hash, v[4].hash);
        assert!(verify(&v, None, Some((3, &v[2].hash))).is_ok());
        assert!(
            verify(&v[2..], Some((2, &v[1].hash)), None).is_ok(),
            "a tail verifies from its start"
        );
    }

    #[test]
    fn each_kind_of_tamper_is_named_at_the_first_record() {
        type Edit = fn(&mut Vec<AuditRecord>);
        let cases: [(&str, Edit, TamperKind, u64); 7] = [
            (
                "payload edited",
                |v| v[2].payload = json!({"n": 99}),
                TamperKind::Changed,
                3,
            ),
            (
                "payload edited, hash recomputed",
                |v| {
                    v[2].payload = json!({"n": 99});
                    v[2].hash = hash_of(&canonical(
                        v[2].seq,
                        v[2].at,
                        &v[2].actor,
                        &v[2].kind,
                        &v[2].payload,
                        &v[2].prev,
                    ));
                },
                TamperKind::Changed,
                3,
            ),
            (
                "record removed",
                |v| {
                    v.remove(2);
                },
                TamperKind::Removed,
                3,
            ),
            (
                "two records swapped",
                |v| v.swap(1, 3),
                TamperKind::Reordered,
                4,
            ),
            (
                "record inserted (duplicate number)",
                |v| {
                    let fake = AuditRecord::next(Some(&v[1]), v[1].at, "intruder", "x", json!({}));
                    v.insert(2, fake);
                    let _ = v; // the following record still carries seq 3
                },
                TamperKind::Inserted,
                3,
            ),
            (
                "actor edited",
                |v| v[0].actor = "someone".into(),
                TamperKind::Changed,
                1,
            ),
            (
                "last record removed (anchor catches it)",
                |v| {
                    v.pop();
                },
                TamperKind::Removed,
                5,
            ),
        ];
        for (name, edit, kind, seq) in cases {
            let original = chain(5);
            let anchor_hash = original[4].hash.clone();
            let mut v = original.clone();
            edit(&mut v);
            let err = verify(&v, None, Some((5, &anchor_hash))).unwrap_err();
            assert_eq!((err.kind, err.seq), (kind, seq), "{name}: {err}");
        }
    }

    #[test]
    fn a_fully_rehashed_forgery_needs_the_anchor_to_be_caught() {
        let original = chain(5);
        let mut v = original.clone();
        v[1].payload = json!({"n": 42});
        rehash_from(&mut v, 1);
        assert!(verify(&v, None, None).is_ok(), "internally consistent");
        let err = verify(&v, None, Some((5, &original[4].hash))).unwrap_err();
        assert_eq!(err.kind, TamperKind::Changed);
    }

    proptest::proptest! {
        #[test]
        fn any_single_tamper_is_caught_with_its_kind(n in 3u64..40, at in 0usize..40, how in 0u8..4) {
            let original = chain(n);
            let anchor = (n, original[n as usize - 1].hash.clone());
            let mut v = original.clone();
            let k = at % (n as usize - 1); // a position with a successor
            let expected = match how {
                0 => { v[k].payload = json!({"edited": true}); TamperKind::Changed }
                1 => { v.remove(k); TamperKind::Removed }
                2 => { v.swap(k, k + 1); TamperKind::Reordered }
                _ => {
                    let fake = AuditRecord::next(Some(&v[k]), v[k].at, "intruder", "x", json!({}));
                    v.insert(k + 1, fake);
                    TamperKind::Inserted
                }
            };
            let err = verify(&v, None, Some((anchor.0, &anchor.1))).unwrap_err();
            proptest::prop_assert_eq!(err.kind, expected, "{}", err);
        }
    }
}
