//! The watcher's local denylist: revoked sessions, per-subject not-before cuts and retired signing
//! keys, each kept until its `expire_time` (plus a grace for the verifier's leeway) and bounded in
//! number.

use std::collections::HashMap;

use auth_proto::v1::{Revocation, RevocationKind};

use crate::claims::Claims;

/// How long a revocation without an `expire_time` is kept (the longest a token may live).
const MISSING_EXPIRY_RETENTION: u64 = 24 * 3600;

/// What matched a revoked token (for logs; the caller sees one `UNAUTHENTICATED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Revoked {
    /// Its session (`sid`) was ended.
    Session,
    /// Its subject's tokens issued before a not-before were cut.
    Subject,
    /// Its signing key was retired.
    Key,
}

/// A revocation that was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skipped {
    /// Already expired: no token it matches is still valid.
    Expired,
    /// Unspecified or unknown kind, or an empty target: nothing to match.
    Unusable,
}

/// The denylist is at its capacity and the revocation is a new entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cut {
    /// Tokens with `iat` below this (whole seconds, rounded up) are revoked.
    not_before: u64,
    expire: u64,
}

/// Revoked sessions, subjects and keys, each with the time (Unix seconds) after which it can be
/// forgotten.
#[derive(Debug)]
pub(crate) struct Denylist {
    sessions: HashMap<Box<str>, u64>,
    subjects: HashMap<Box<str>, Cut>,
    keys: HashMap<Box<str>, u64>,
    capacity: usize,
    /// Seconds an entry outlives its `expire_time` (the verifier's `exp` leeway).
    grace: u64,
}

/// Whole seconds of a protobuf timestamp, rounded up (so a bound is never cut short).
fn ceil_secs(t: &prost_types::Timestamp) -> u64 {
    let secs = u64::try_from(t.seconds).unwrap_or(0);
    if t.nanos > 0 {
        secs.saturating_add(1)
    } else {
        secs
    }
}

impl Denylist {
    /// An empty list holding at most `capacity` entries, each kept `grace` seconds past its expiry.
    pub(crate) fn new(capacity: usize, grace: u64) -> Self {
        Self {
            sessions: HashMap::new(),
            subjects: HashMap::new(),
            keys: HashMap::new(),
            capacity,
            grace,
        }
    }

    /// An empty list with the same bounds (the staging list of a snapshot).
    pub(crate) fn empty_like(&self) -> Self {
        Self::new(self.capacity, self.grace)
    }

    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        self.sessions.len() + self.subjects.len() + self.keys.len()
    }

    /// Adds `revocation` at `now` (Unix seconds). A subject already cut keeps the later not-before
    /// and the later expiry. Refused with [`Full`] when it would be a new entry beyond the capacity.
    pub(crate) fn apply(&mut self, revocation: &Revocation, now: u64) -> Result<(), ApplyError> {
        let target = revocation.target.as_str();
        if target.is_empty() {
            return Err(ApplyError::Skipped(Skipped::Unusable));
        }
        let expire = revocation
            .expire_time
            .as_ref()
            .map_or_else(|| now.saturating_add(MISSING_EXPIRY_RETENTION), ceil_secs);
        if expire.saturating_add(self.grace) <= now {
            return Err(ApplyError::Skipped(Skipped::Expired));
        }
        let full = self.len() >= self.capacity;
        match RevocationKind::try_from(revocation.kind) {
            Ok(RevocationKind::Session) => upsert(
                &mut self.sessions,
                target,
                full,
                |e| {
                    *e = (*e).max(expire);
                },
                expire,
            ),
            Ok(RevocationKind::Key) => upsert(
                &mut self.keys,
                target,
                full,
                |e| {
                    *e = (*e).max(expire);
                },
                expire,
            ),
            Ok(RevocationKind::Subject) => {
                let not_before = revocation.not_before.as_ref().map_or(u64::MAX, ceil_secs);
                let cut = Cut { not_before, expire };
                upsert(
                    &mut self.subjects,
                    target,
                    full,
                    |e| {
                        e.not_before = e.not_before.max(not_before);
                        e.expire = e.expire.max(expire);
                    },
                    cut,
                )
            }
            Ok(RevocationKind::Unspecified) | Err(_) => Err(ApplyError::Skipped(Skipped::Unusable)),
        }
    }

    /// Forgets every entry whose expiry (plus the grace) is at or before `now`; returns how many.
    pub(crate) fn prune(&mut self, now: u64) -> usize {
        let before = self.len();
        let live = |expire: u64| expire.saturating_add(self.grace) > now;
        self.sessions.retain(|_, e| live(*e));
        self.keys.retain(|_, e| live(*e));
        self.subjects.retain(|_, c| live(c.expire));
        before - self.len()
    }

    /// Whether verified `claims` (signed by the key `kid()` names; asked only when some key is
    /// revoked) are revoked.
    pub(crate) fn check(
        &self,
        claims: &Claims,
        kid: impl FnOnce() -> Option<String>,
    ) -> Option<Revoked> {
        if !claims.sid.is_empty() && self.sessions.contains_key(claims.sid.as_str()) {
            return Some(Revoked::Session);
        }
        if let Some(cut) = self.subjects.get(claims.sub.as_str())
            && claims.iat < cut.not_before
        {
            return Some(Revoked::Subject);
        }
        if !self.keys.is_empty() && kid().is_some_and(|kid| self.keys.contains_key(kid.as_str())) {
            return Some(Revoked::Key);
        }
        None
    }
}

/// Why [`Denylist::apply`] stored nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApplyError {
    /// Nothing worth storing.
    Skipped(Skipped),
    /// At capacity.
    Full(Full),
}

fn upsert<V>(
    map: &mut HashMap<Box<str>, V>,
    key: &str,
    full: bool,
    merge: impl FnOnce(&mut V),
    value: V,
) -> Result<(), ApplyError> {
    if let Some(existing) = map.get_mut(key) {
        merge(existing);
        return Ok(());
    }
    if full {
        return Err(ApplyError::Full(Full));
    }
    map.insert(key.into(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::claims_at;

    fn ts(seconds: u64, nanos: i32) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp {
            seconds: seconds as i64,
            nanos,
        })
    }

    fn rev(kind: RevocationKind, target: &str, not_before: u64, expire: u64) -> Revocation {
        Revocation {
            sequence: 1,
            kind: kind as i32,
            target: target.into(),
            not_before: (kind == RevocationKind::Subject)
                .then(|| ts(not_before, 0))
                .flatten(),
            expire_time: ts(expire, 0),
        }
    }

    fn claims(sub: &str, sid: &str, iat: u64) -> Claims {
        let mut c: Claims = serde_json::from_value(claims_at(sub, &[], iat, 600)).unwrap();
        c.sid = sid.into();
        c
    }

    #[test]
    fn sessions_subjects_and_keys_match_what_they_name() {
        let mut d = Denylist::new(10, 0);
        d.apply(&rev(RevocationKind::Session, "s1", 0, 2000), 1000)
            .unwrap();
        d.apply(&rev(RevocationKind::Subject, "u2", 1500, 2000), 1000)
            .unwrap();
        d.apply(&rev(RevocationKind::Key, "k3", 0, 2000), 1000)
            .unwrap();
        let none = || None;
        assert_eq!(
            d.check(&claims("u1", "s1", 1000), none),
            Some(Revoked::Session)
        );
        assert_eq!(d.check(&claims("u1", "s9", 1000), none), None);
        // The subject cut applies to tokens issued before it only.
        assert_eq!(
            d.check(&claims("u2", "s9", 1499), none),
            Some(Revoked::Subject)
        );
        assert_eq!(d.check(&claims("u2", "s9", 1500), none), None);
        assert_eq!(
            d.check(&claims("u1", "s9", 1000), || Some("k3".into())),
            Some(Revoked::Key)
        );
        assert_eq!(
            d.check(&claims("u1", "s9", 1000), || Some("k4".into())),
            None
        );
        // A token without a session id is not matched by an empty session.
        assert_eq!(d.check(&claims("u1", "", 1000), none), None);
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn a_fractional_not_before_rounds_up_and_a_later_cut_wins() {
        let mut d = Denylist::new(10, 0);
        let mut r = rev(RevocationKind::Subject, "u", 0, 5000);
        r.not_before = ts(1500, 1);
        d.apply(&r, 1000).unwrap();
        // Issued in the same second as the cut: refused (it may have been issued before it).
        assert_eq!(
            d.check(&claims("u", "s", 1500), || None),
            Some(Revoked::Subject)
        );
        assert_eq!(d.check(&claims("u", "s", 1501), || None), None);
        // An earlier cut arriving later does not move the cut back.
        d.apply(&rev(RevocationKind::Subject, "u", 1200, 3000), 1000)
            .unwrap();
        assert_eq!(
            d.check(&claims("u", "s", 1500), || None),
            Some(Revoked::Subject)
        );
        d.apply(&rev(RevocationKind::Subject, "u", 1700, 3000), 1000)
            .unwrap();
        assert_eq!(
            d.check(&claims("u", "s", 1650), || None),
            Some(Revoked::Subject)
        );
        assert_eq!(d.len(), 1);
        // The later expiry is kept too.
        assert_eq!(d.prune(4999), 0);
        assert_eq!(d.prune(5000), 1);
    }

    #[test]
    fn entries_are_dropped_after_expiry_plus_grace() {
        let mut d = Denylist::new(10, 30);
        d.apply(&rev(RevocationKind::Session, "s1", 0, 2000), 1000)
            .unwrap();
        d.apply(&rev(RevocationKind::Session, "s2", 0, 3000), 1000)
            .unwrap();
        assert_eq!(d.prune(2029), 0);
        assert_eq!(d.prune(2030), 1);
        assert_eq!(d.check(&claims("u", "s1", 1000), || None), None);
        assert_eq!(
            d.check(&claims("u", "s2", 1000), || None),
            Some(Revoked::Session)
        );
        // Already expired (grace included) when it arrives: not stored.
        assert_eq!(
            d.apply(&rev(RevocationKind::Session, "s3", 0, 1000), 1030),
            Err(ApplyError::Skipped(Skipped::Expired))
        );
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn capacity_refuses_new_entries_but_merges_known_ones() {
        let mut d = Denylist::new(2, 0);
        d.apply(&rev(RevocationKind::Session, "s1", 0, 2000), 1000)
            .unwrap();
        d.apply(&rev(RevocationKind::Key, "k1", 0, 2000), 1000)
            .unwrap();
        assert_eq!(
            d.apply(&rev(RevocationKind::Subject, "u1", 1500, 2000), 1000),
            Err(ApplyError::Full(Full))
        );
        // The same session again is a merge, not a new entry.
        d.apply(&rev(RevocationKind::Session, "s1", 0, 2500), 1000)
            .unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(
            d.prune(2000),
            1,
            "the key expired, the session's expiry moved to 2500"
        );
    }

    #[test]
    fn unusable_revocations_are_skipped() {
        let mut d = Denylist::new(10, 0);
        let mut r = rev(RevocationKind::Session, "", 0, 2000);
        assert_eq!(
            d.apply(&r, 1000),
            Err(ApplyError::Skipped(Skipped::Unusable))
        );
        r.target = "s".into();
        r.kind = RevocationKind::Unspecified as i32;
        assert_eq!(
            d.apply(&r, 1000),
            Err(ApplyError::Skipped(Skipped::Unusable))
        );
        r.kind = 99;
        assert_eq!(
            d.apply(&r, 1000),
            Err(ApplyError::Skipped(Skipped::Unusable))
        );
        // A subject revocation without a not-before cuts every token of the subject.
        let mut r = rev(RevocationKind::Subject, "u", 0, 2000);
        r.not_before = None;
        d.apply(&r, 1000).unwrap();
        assert_eq!(
            d.check(&claims("u", "s", 1999), || None),
            Some(Revoked::Subject)
        );
        assert_eq!(d.len(), 1);
    }
}
