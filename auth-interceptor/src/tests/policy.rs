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

/// Verified claims of a service token issued to `client_id` with `roles`.
fn claims_of(client_id: &str, roles: &[&str]) -> crate::Claims {
    let v = crate::testing::service_claims("acct-1", client_id, "orders", roles);
    serde_json::from_value(v).unwrap()
}

#[test]
fn client_rules_admit_only_the_listed_callers() {
    let refund = Rule::any_role(["refunds"]).with_clients(["payments"]);
    assert!(refund.permits(&claims_of("payments", &["refunds"])));
    assert!(
        !refund.permits(&claims_of("payments", &["reader"])),
        "role still required"
    );
    assert!(
        !refund.permits(&claims_of("billing", &["refunds"])),
        "client required"
    );
    // Exact, case-sensitive names: no prefix or case folding.
    assert!(!refund.permits(&claims_of("Payments", &["refunds"])));
    assert!(!refund.permits(&claims_of("payments2", &["refunds"])));
    assert!(!refund.permits(&claims_of("", &["refunds"])));
    let either = Rule::clients(["payments", "billing"]);
    assert_eq!(either.access, Access::Required);
    assert!(either.permits(&claims_of("billing", &[])));
    assert!(!either.permits(&claims_of("auth-server", &["admin"])));
    // A user token never matches a client rule, even one naming its client_id.
    let mut user = claims_of("auth-server", &["refunds"]);
    user.kind = crate::TokenKind::User;
    assert!(!Rule::clients(["auth-server"]).permits(&user));
    assert!(Rule::any_role(["refunds"]).permits(&user));
    // No client list: any caller with the roles.
    assert!(Rule::any_role(["refunds"]).permits(&claims_of("anyone", &["refunds"])));

    let p = Policy::builder()
        .clients("pkg.Svc/Refund", ["payments"])
        .rule(
            "pkg.Svc/*",
            Rule::all_roles(["a", "b"]).with_clients(["billing"]),
        )
        .build()
        .unwrap();
    assert_eq!(
        p.rule_for("/pkg.Svc/Refund").clients,
        Some(vec!["payments".to_owned()])
    );
    assert!(
        p.rule_for("/pkg.Svc/X")
            .permits(&claims_of("billing", &["a", "b"]))
    );
    assert!(
        !p.rule_for("/pkg.Svc/X")
            .permits(&claims_of("billing", &["a"]))
    );
}

#[test]
fn client_rules_must_list_clients_and_require_a_token() {
    let none: [&str; 0] = [];
    assert_eq!(
        Policy::builder()
            .clients("a.B/C", none)
            .build()
            .unwrap_err(),
        PolicyError::NoClients("a.B/C".into())
    );
    for rule in [Rule::public(), Rule::optional(), Rule::deny()] {
        assert_eq!(
            Policy::builder()
                .rule("a.B/C", rule.with_clients(["p"]))
                .build()
                .unwrap_err(),
            PolicyError::ClientsNeedToken("a.B/C".into())
        );
    }
    assert_eq!(
        Policy::builder()
            .default_rule(Rule::public().with_clients(["p"]))
            .build()
            .unwrap_err(),
        PolicyError::ClientsNeedToken("default".into())
    );
    Policy::builder()
        .default_rule(Rule::clients(["p"]))
        .build()
        .unwrap();
}

/// Policy files: the same rules as the builder, and every mistake named by its line.
mod file {
    use crate::policy::*;
    use crate::policy_file::PolicyFileError;

    const EXAMPLE: &str = r#"# a comment
default = "deny"
presets = ["health", "reflection"]

[methods]
"demo.v1.GreeterService/SayHello" = "public"
"demo.v1.GreeterService/*" = "required"
"/demo.v1.GreeterService/AdminHello" = { any_role = ["admin", "ops"] }
"demo.v1.GreeterService/Audit" = { all_roles = ["admin", "auditor"] }
"demo.v1.GreeterService/Get*" = "optional"
"demo.v1.GreeterService/Refund" = { clients = ["payments"], any_role = ["refunds"] }
"demo.v1.GreeterService/Sync" = { clients = ["billing", "payments"] }
"demo.v1.Internal*" = "deny"
"#;

    #[test]
    fn a_file_builds_the_same_policy_as_the_builder() {
        let from_file = Policy::from_toml(EXAMPLE).unwrap();
        let built = Policy::builder()
            .with_health()
            .with_reflection()
            .public("demo.v1.GreeterService/SayHello")
            .required("demo.v1.GreeterService/*")
            .any_role("demo.v1.GreeterService/AdminHello", ["admin", "ops"])
            .all_roles("demo.v1.GreeterService/Audit", ["admin", "auditor"])
            .optional("demo.v1.GreeterService/Get*")
            .rule(
                "demo.v1.GreeterService/Refund",
                Rule::any_role(["refunds"]).with_clients(["payments"]),
            )
            .clients("demo.v1.GreeterService/Sync", ["billing", "payments"])
            .deny("demo.v1.Internal*")
            .build()
            .unwrap();
        for path in [
            "/demo.v1.GreeterService/SayHello",
            "/demo.v1.GreeterService/WhoAmI",
            "/demo.v1.GreeterService/AdminHello",
            "/demo.v1.GreeterService/Audit",
            "/demo.v1.GreeterService/GetThing",
            "/demo.v1.GreeterService/Refund",
            "/demo.v1.GreeterService/Sync",
            "/demo.v1.InternalService/X",
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/other.v1.Svc/M",
            "",
        ] {
            assert_eq!(from_file.rule_for(path), built.rule_for(path), "{path}");
        }
        from_file
            .check_services(&["demo.v1.GreeterService", "demo.v1.InternalService"])
            .unwrap();
        // Presets are not checked against the registered services; file rules are.
        assert!(from_file.check_services(&["demo.v1.Other"]).is_err());
    }

    #[test]
    fn defaults_and_empty_files() {
        let p = Policy::from_toml("").unwrap();
        assert_eq!(p.rule_for("/a.B/C").access, Access::Deny);
        let p = Policy::from_toml("default = \"required\"\n").unwrap();
        assert_eq!(p.rule_for("/a.B/C").access, Access::Required);
        let p = Policy::from_toml("default = { any_role = [\"x\"] }\n").unwrap();
        assert_eq!(
            p.rule_for("/a.B/C").access,
            Access::AnyRole(vec!["x".into()])
        );
        let p = Policy::from_toml("presets = [\"auth_public\"]\n").unwrap();
        assert_eq!(
            p.rule_for("/auth.v1.AuthService/Login").access,
            Access::Public
        );
    }

    fn line_of(text: &str) -> (usize, String) {
        let e = Policy::from_toml(text).unwrap_err();
        (e.line().unwrap(), e.to_string())
    }

    #[test]
    fn every_mistake_names_its_line() {
        for (text, line, needle) in [
            // Unknown keys, at the top level and in a role rule.
            (
                "presets = []\nallow = \"all\"\n",
                2,
                "unknown field `allow`",
            ),
            (
                "[methods]\n\"a.B/C\" = { any_roles = [\"x\"] }\n",
                2,
                "unknown key \"any_roles\"",
            ),
            (
                "[methods]\n\"a.B/C\" = { any_role = [\"x\"], all_roles = [\"y\"] }\n",
                2,
                "exclude each other",
            ),
            // Unknown access, bad values.
            (
                "\n[methods]\n\"a.B/C\" = \"admin\"\n",
                3,
                "unknown access \"admin\"",
            ),
            ("[methods]\n\"a.B/C\" = 3\n", 2, "expected \"public\""),
            (
                "[methods]\n\"a.B/C\" = { any_role = \"admin\" }\n",
                2,
                "list of names",
            ),
            ("default = \"allow\"\n", 1, "default: unknown access"),
            (
                "presets = [\"health\", \"grpc\"]\n",
                1,
                "unknown preset \"grpc\"",
            ),
            // Bad patterns, empty role lists, duplicates (also spelled differently).
            (
                "[methods]\n\"a.B/C\" = \"public\"\n\"a/b/c\" = \"public\"\n",
                3,
                "invalid method pattern \"a/b/c\"",
            ),
            (
                "[methods]\n\"a.B/C\" = \"public\"\n\n\"a.B/D\" = { all_roles = [] }\n",
                4,
                "lists no roles",
            ),
            (
                "[methods]\n\"a.B/C\" = \"public\"\n\"/a.B/C\" = \"required\"\n",
                3,
                "duplicate rule for \"a.B/C\"",
            ),
            (
                "presets = [\"health\"]\n[methods]\n\"grpc.health.v1.Health/*\" = \"required\"\n",
                3,
                "duplicate rule",
            ),
            ("default = { any_role = [] }\n", 1, "lists no roles"),
            // Client rules: a list of names, not empty, only on rules that require a token.
            (
                "[methods]\n\"a.B/C\" = { clients = \"payments\" }\n",
                2,
                "clients must be a list of names",
            ),
            (
                "[methods]\n\"a.B/C\" = { any_role = [\"x\"], client = [\"p\"] }\n",
                2,
                "unknown key \"client\"",
            ),
            (
                "[methods]\n\"a.B/C\" = \"public\"\n\"a.B/D\" = { clients = [] }\n",
                3,
                "lists no clients",
            ),
            (
                "[methods]\n\"a.B/C\" = {}\n",
                2,
                "an empty table is no access",
            ),
            ("default = { clients = [] }\n", 1, "lists no clients"),
            // Not TOML at all, or a key given twice (TOML itself refuses it).
            ("[methods]\n\"a.B/C\" = \n", 2, ""),
            (
                "[methods]\n\"a.B/C\" = \"public\"\n\"a.B/C\" = \"deny\"\n",
                3,
                "",
            ),
        ] {
            let (got, message) = line_of(text);
            assert_eq!(got, line, "{text:?}: {message}");
            assert!(message.contains(needle), "{text:?}: {message}");
            assert!(message.starts_with(&format!("line {line}: ")), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("policy-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy.toml");
        std::fs::write(
            &path,
            "[methods]\n\"a.B/C\" = \"public\"\n\"x\" = \"public\"\n",
        )
        .unwrap();
        let e = Policy::load(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{} line 3: invalid method pattern \"x\"", path.display())
        );
        assert!(matches!(
            e,
            PolicyFileError::Rule {
                line: 3,
                error: PolicyError::InvalidPattern(_),
                ..
            }
        ));
        std::fs::write(&path, EXAMPLE).unwrap();
        assert!(Policy::load(&path).is_ok());
        let missing = Policy::load(dir.join("missing.toml")).unwrap_err();
        assert!(matches!(missing, PolicyFileError::Unreadable { .. }));
        assert_eq!(missing.line(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn fail_closed_bounds_apply_to_rules_that_admit_tokens() {
    use crate::WhenStale;
    use std::time::Duration;
    let bound = Duration::from_secs(30);
    let p = Policy::builder()
        .public("pkg.Svc/Open")
        .required("pkg.Svc/*")
        .deny("pkg.Svc/Closed")
        .rule(
            "pkg.Svc/Tight",
            Rule::required().fail_closed_after(Duration::ZERO),
        )
        .default_rule(Rule::optional())
        .fail_closed_after(bound)
        .build()
        .unwrap();
    assert_eq!(p.rule_for("/pkg.Svc/Open").when_stale, WhenStale::Accept);
    assert_eq!(p.rule_for("/pkg.Svc/Closed").when_stale, WhenStale::Accept);
    assert_eq!(
        p.rule_for("/pkg.Svc/Any").when_stale,
        WhenStale::RefuseAfter(bound)
    );
    assert_eq!(
        p.rule_for("/other.Svc/M").when_stale,
        WhenStale::RefuseAfter(bound),
        "the default rule too"
    );
    assert_eq!(
        p.rule_for("/pkg.Svc/Tight").when_stale,
        WhenStale::RefuseAfter(Duration::ZERO),
        "a rule's own bound wins"
    );
    // Without the policy-wide bound, rules accept (the default).
    let p = Policy::builder().required("pkg.Svc/*").build().unwrap();
    assert_eq!(p.rule_for("/pkg.Svc/Any").when_stale, WhenStale::Accept);
    assert_eq!(p.first_fail_closed_rule(), None);

    // The file's key does the same, and is range-checked.
    let p =
        Policy::from_toml("fail_closed_after_secs = 30\n[methods]\n\"pkg.Svc/*\" = \"required\"\n")
            .unwrap();
    assert_eq!(
        p.rule_for("/pkg.Svc/Any").when_stale,
        WhenStale::RefuseAfter(bound)
    );
    assert_eq!(p.first_fail_closed_rule().as_deref(), Some("pkg.Svc"));
    for bad in ["-1", "86401"] {
        let err = Policy::from_toml(&format!("fail_closed_after_secs = {bad}\n")).unwrap_err();
        assert_eq!(err.line(), Some(1));
        assert!(err.to_string().contains("expected 0 to 86400"), "{err}");
    }
}
