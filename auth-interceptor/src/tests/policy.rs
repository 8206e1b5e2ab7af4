//! Policy rules: specificity, pattern validation and the auth-server preset.

use crate::policy::*;

#[test]
fn most_specific_rule_wins() {
    let p = Policy::builder()
        .public("pkg.*")
        .required("pkg.Svc/*")
        .any_role("/pkg.Svc/Admin", ["admin"])
        .optional("pkg.Svc/Get*")
        .build()
        .unwrap();
    assert_eq!(
        p.rule_for("/pkg.Svc/Admin").access,
        Access::AnyRole(vec!["admin".into()])
    );
    assert_eq!(p.rule_for("/pkg.Svc/Other").access, Access::Required);
    assert_eq!(p.rule_for("/pkg.Other/X").access, Access::Public);
    assert_eq!(p.rule_for("/pkgx.Svc/X").access, Access::Deny);
    assert_eq!(p.rule_for("").access, Access::Deny);
    assert_eq!(p.rule_for("/").access, Access::Deny);
    // Service rules beat prefix rules even when the prefix is longer.
    assert_eq!(p.rule_for("/pkg.Svc/GetThing").access, Access::Required);
}

#[test]
fn invalid_and_duplicate_patterns() {
    for bad in [
        "",
        "/",
        "Svc",
        "a/b/c",
        "a*b/*",
        "a/*/b",
        "pkg.Svc/",
        "/pkg Svc/M",
        "*/M",
    ] {
        assert!(Policy::builder().public(bad).build().is_err(), "{bad:?}");
    }
    let dup = Policy::builder().public("/a.B/C").required("a.B/C").build();
    assert_eq!(dup.unwrap_err(), PolicyError::DuplicateRule("a.B/C".into()));
    let none: [&str; 0] = [];
    assert!(Policy::builder().any_role("a.B/C", none).build().is_err());
}
