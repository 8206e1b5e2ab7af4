//! The in-memory revocation view: what the log says is revoked and not yet expired — revoked
//! sessions (sid → expiry), per-subject not-before, revoked keys — answering "is this token
//! revoked?" without the database.
//!
//! Memory bound: one entry per distinct sid, sub or kid revoked within the last token lifetime
//! (`AUTH_ACCESS_TOKEN_TTL` + `AUTH_LEEWAY`); entries are dropped as they expire ([`View::prune`]).
//! Each entry is about 100 bytes plus its id, so 100,000 revocations in ten minutes hold ≈ 15 MB.

use std::collections::HashMap;

use crate::store::{RevocationKind, RevocationRecord};

/// One entry of the view: the latest row about its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The sequence of the latest row about the target.
    pub(crate) seq: i64,
    /// For subjects: tokens issued before are revoked.
    pub(crate) not_before: Option<i64>,
    /// After this no token the entry matches can still be valid.
    pub(crate) expires_at: i64,
}

/// What the view knows.
#[derive(Debug, Default)]
pub(crate) struct View {
    sessions: HashMap<String, Entry>,
    subjects: HashMap<String, Entry>,
    keys: HashMap<String, Entry>,
}

/// A token, as far as the view is concerned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenRef<'a> {
    /// `sid` (empty when the token has none).
    pub(crate) sid: &'a str,
    /// `sub`.
    pub(crate) sub: &'a str,
    /// `iat`.
    pub(crate) iat: i64,
    /// The key id of its header, when known.
    pub(crate) kid: Option<&'a str>,
}

impl View {
    /// Applies a log row (rows of kind `keys` carry no revocation and are ignored), unless it has
    /// already expired at `now`.
    pub(crate) fn apply(&mut self, row: &RevocationRecord, now: i64) {
        if row.expires_at <= now {
            return;
        }
        let map = match row.kind {
            RevocationKind::Session => &mut self.sessions,
            RevocationKind::Subject => &mut self.subjects,
            RevocationKind::Key => &mut self.keys,
            RevocationKind::Keys => return,
        };
        let entry = map.entry(row.target.clone()).or_insert(Entry {
            seq: row.seq,
            not_before: row.not_before,
            expires_at: row.expires_at,
        });
        // Several rows about one target merge into the one that revokes the most.
        entry.seq = entry.seq.max(row.seq);
        entry.expires_at = entry.expires_at.max(row.expires_at);
        entry.not_before = entry.not_before.max(row.not_before);
    }

    /// True when `token` is revoked at `now`: its session is, its subject's not-before is after
    /// its issue (same-second issue counts as after, as `tokens_not_before` always has), or its key
    /// is.
    pub(crate) fn revoked(&self, token: TokenRef<'_>, now: i64) -> bool {
        let live = |e: &&Entry| e.expires_at > now;
        if !token.sid.is_empty() && self.sessions.get(token.sid).filter(live).is_some() {
            return true;
        }
        if self
            .subjects
            .get(token.sub)
            .filter(live)
            .is_some_and(|e| e.not_before.is_some_and(|nb| token.iat < nb))
        {
            return true;
        }
        token
            .kid
            .is_some_and(|kid| self.keys.get(kid).filter(live).is_some())
    }

    /// True when some key is revoked (the caller then reads the token's `kid`).
    pub(crate) fn has_revoked_keys(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Drops the entries expired at `now`.
    pub(crate) fn prune(&mut self, now: i64) {
        for map in [&mut self.sessions, &mut self.subjects, &mut self.keys] {
            map.retain(|_, e| e.expires_at > now);
        }
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.sessions.len() + self.subjects.len() + self.keys.len()
    }

    /// Every entry as a log row (of the latest sequence about its target), oldest first.
    pub(crate) fn rows(&self) -> Vec<RevocationRecord> {
        let kinds = [
            (RevocationKind::Session, &self.sessions),
            (RevocationKind::Subject, &self.subjects),
            (RevocationKind::Key, &self.keys),
        ];
        let mut rows: Vec<RevocationRecord> = kinds
            .into_iter()
            .flat_map(|(kind, map)| {
                map.iter().map(move |(target, e)| RevocationRecord {
                    seq: e.seq,
                    kind,
                    target: target.clone(),
                    not_before: e.not_before,
                    expires_at: e.expires_at,
                    created_at: 0,
                })
            })
            .collect();
        rows.sort_unstable_by_key(|r| r.seq);
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        seq: i64,
        kind: RevocationKind,
        target: &str,
        nb: Option<i64>,
        exp: i64,
    ) -> RevocationRecord {
        RevocationRecord {
            seq,
            kind,
            target: target.into(),
            not_before: nb,
            expires_at: exp,
            created_at: 0,
        }
    }

    fn token<'a>(sid: &'a str, sub: &'a str, iat: i64, kid: Option<&'a str>) -> TokenRef<'a> {
        TokenRef { sid, sub, iat, kid }
    }

    #[test]
    fn sessions_subjects_and_keys_are_revoked_until_they_expire() {
        let mut v = View::default();
        v.apply(&row(1, RevocationKind::Session, "s1", None, 200), 100);
        v.apply(&row(2, RevocationKind::Subject, "u1", Some(150), 300), 100);
        v.apply(&row(3, RevocationKind::Key, "k1", None, 400), 100);
        v.apply(&row(4, RevocationKind::Keys, "", None, 400), 100);
        assert_eq!(v.len(), 3);
        assert!(v.revoked(token("s1", "u9", 0, None), 100));
        assert!(!v.revoked(token("s2", "u9", 0, None), 100));
        // Issued before the watermark: revoked; at or after it: not.
        assert!(v.revoked(token("s2", "u1", 149, None), 100));
        assert!(!v.revoked(token("s2", "u1", 150, None), 100));
        assert!(v.revoked(token("s2", "u9", 0, Some("k1")), 100));
        assert!(v.has_revoked_keys());
        // Expired entries no longer match, and pruning drops them.
        assert!(!v.revoked(token("s1", "u9", 0, None), 200));
        v.prune(300);
        assert_eq!(v.len(), 1);
        assert_eq!(v.rows()[0].target, "k1");
    }

    #[test]
    fn rows_about_one_target_merge_and_expired_rows_are_ignored() {
        let mut v = View::default();
        v.apply(&row(1, RevocationKind::Subject, "u1", Some(150), 300), 100);
        v.apply(&row(5, RevocationKind::Subject, "u1", Some(180), 330), 100);
        v.apply(&row(6, RevocationKind::Session, "old", None, 100), 100);
        let rows = v.rows();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].seq, rows[0].not_before, rows[0].expires_at),
            (5, Some(180), 330)
        );
        assert!(v.revoked(token("", "u1", 179, None), 100));
    }
}
