//! Claim-rule attacks of the catalogue (F12, C01–C09), signed with the server's real key: only the
//! claims and header rules can refuse them.

use auth_proto::v1::InvalidReason;
use serde_json::{Value, json};

use super::super::harness::{ACCESS_TTL, LEEWAY};
use super::super::tokens::SigningKey;
use super::Case;

/// Claim-rule cases (F12, C01–C09) signed with the server's real key `key` (the catalogue's `S(h,p)`),
/// from the claims `p` of a real token, at server time `now`.
pub fn forged_claim_cases(key: &SigningKey, p: &Value, now: i64) -> Vec<Case> {
    let h = key.header();
    let mut cases: Vec<(String, Value, Value, Option<InvalidReason>)> = Vec::new();
    let with = |k: &str, v: Value| {
        let mut p2 = p.clone();
        p2[k] = v;
        p2
    };
    let without = |k: &str| {
        let mut p2 = p.clone();
        p2.as_object_mut().expect("object").remove(k);
        p2
    };
    // F12: crit.
    let mut hc = h.clone();
    hc["crit"] = json!(["b64"]);
    hc["b64"] = json!(false);
    cases.push((
        "F12 crit b64".into(),
        hc,
        p.clone(),
        Some(InvalidReason::Malformed),
    ));
    let mut hc = h.clone();
    hc["crit"] = json!(["x-unknown"]);
    cases.push((
        "F12 crit unknown".into(),
        hc,
        p.clone(),
        Some(InvalidReason::Malformed),
    ));
    // C01/C02: exp missing or mistyped.
    cases.push((
        "C01 no exp".into(),
        h.clone(),
        without("exp"),
        Some(InvalidReason::Malformed),
    ));
    for v in [
        json!("9999999999"),
        json!("never"),
        json!(true),
        json!(null),
        json!(-1),
        json!(1e300),
        json!(18446744073709551616.0_f64),
    ] {
        cases.push((format!("C02 exp={v}"), h.clone(), with("exp", v), None));
    }
    cases.push((
        "C02 nbf=x".into(),
        h.clone(),
        with("nbf", json!("x")),
        Some(InvalidReason::Malformed),
    ));
    // C03: leeway boundary.
    let mut expired = p.clone();
    expired["iat"] = json!(now - ACCESS_TTL - LEEWAY - 1);
    expired["nbf"] = expired["iat"].clone();
    expired["exp"] = json!(now - LEEWAY - 1);
    cases.push((
        "C03 exp=now-(L+1)".into(),
        h.clone(),
        expired,
        Some(InvalidReason::Expired),
    ));
    // C04: lifetime beyond the configured TTL.
    cases.push((
        "C04 exp-iat > ttl".into(),
        h.clone(),
        with("exp", json!(now + 2 * ACCESS_TTL)),
        Some(InvalidReason::Malformed),
    ));
    cases.push((
        "C04 exp < iat".into(),
        h.clone(),
        with("exp", json!(now - 1)),
        None,
    ));
    // C05: not yet valid.
    cases.push((
        "C05 nbf=now+3600".into(),
        h.clone(),
        with("nbf", json!(now + 3600)),
        Some(InvalidReason::NotYetValid),
    ));
    let mut future = p.clone();
    future["iat"] = json!(now + 3600);
    future["nbf"] = json!(now + 3600);
    future["exp"] = json!(now + 3600 + ACCESS_TTL);
    cases.push((
        "C05 iat=now+3600".into(),
        h.clone(),
        future,
        Some(InvalidReason::NotYetValid),
    ));
    // C06/C07: audience and issuer.
    cases.push((
        "C06 no aud".into(),
        h.clone(),
        without("aud"),
        Some(InvalidReason::WrongAudience),
    ));
    cases.push((
        "C06 aud=123".into(),
        h.clone(),
        with("aud", json!(123)),
        None,
    ));
    cases.push((
        "C06 aud=[1,2]".into(),
        h.clone(),
        with("aud", json!([1, 2])),
        None,
    ));
    cases.push((
        "C07 aud=billing".into(),
        h.clone(),
        with("aud", json!("billing")),
        Some(InvalidReason::WrongAudience),
    ));
    cases.push((
        "C07 aud=INTERNAL".into(),
        h.clone(),
        with("aud", json!("INTERNAL")),
        Some(InvalidReason::WrongAudience),
    ));
    cases.push((
        "C07 iss=evil".into(),
        h.clone(),
        with("iss", json!("evil")),
        Some(InvalidReason::WrongIssuer),
    ));
    cases.push((
        "C07 no iss".into(),
        h.clone(),
        without("iss"),
        Some(InvalidReason::WrongIssuer),
    ));
    // C08: token type.
    for typ in [
        json!("JWT"),
        json!("refresh+jwt"),
        json!(null),
        json!(""),
        json!(1),
    ] {
        let mut ht = h.clone();
        ht["typ"] = typ.clone();
        cases.push((
            format!("C08 typ={typ}"),
            ht,
            p.clone(),
            Some(InvalidReason::Malformed),
        ));
    }
    let mut ht = h.clone();
    ht.as_object_mut().expect("object").remove("typ");
    cases.push((
        "C08 no typ".into(),
        ht,
        p.clone(),
        Some(InvalidReason::Malformed),
    ));
    // C09: subject.
    cases.push(("C09 no sub".into(), h.clone(), without("sub"), None));
    cases.push((
        "C09 sub=\"\"".into(),
        h.clone(),
        with("sub", json!("")),
        None,
    ));
    cases.push((
        "C09 sub=123".into(),
        h.clone(),
        with("sub", json!(123)),
        None,
    ));
    // A `sub` or `sid` the database does not know is not a case here: only the holder of the
    // server's signing key can mint one, and `Validate` answers from the revocation view, which holds
    // what ended (a deleted user's subject, a revoked session), not what exists. Those are checked
    // in `validate::account_changes_revoke_tokens` and the `revocations` module.
    for k in ["jti", "sid", "username", "nbf", "iat"] {
        cases.push((format!("missing {k}"), h.clone(), without(k), None));
    }
    cases.push((
        "roles not a list".into(),
        h.clone(),
        with("roles", json!("admin")),
        Some(InvalidReason::Malformed),
    ));
    cases
        .into_iter()
        .map(|(what, hh, pp, r)| Case::new(what, key.sign(&hh, &pp), r))
        .collect()
}
