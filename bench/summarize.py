"""Turns bench/run.sh's results into the targets table of BENCHMARKS.md (stdlib only).

usage: summarize.py results.jsonl [criterion.txt]
"""

import json
import os
import re
import sys

ARGON2_MIB = 19456 / 1024
PERMITS = os.cpu_count() or 2

rows = {}
with open(sys.argv[1]) as f:
    for line in f:
        if line.strip():
            r = json.loads(line)
            rows[r["label"]] = r


def get(label_start):
    for label, r in rows.items():
        if label.startswith(label_start):
            return r
    return None


out = []


def check(name, value, target, ok):
    mark = "met" if ok else "**missed**"
    out.append(f"| {name} | {value} | {target} | {mark} |")


out.append("| target | measured | goal | |")
out.append("|---|---|---|---|")
bases = [r for k, r in rows.items() if k.startswith("greeter WhoAmI, no auth layer")]
base = None
if bases:
    # The baseline is measured before and after the per-algorithm rows; their mean is the reference.
    base = {"ok_per_sec": sum(b["ok_per_sec"] for b in bases) / len(bases)}
if base:
    for alg in ["HS256", "EdDSA", "ES256", "RS256"]:
        warm = get(f"greeter WhoAmI, auth layer {alg}, warm")
        cold = get(f"greeter WhoAmI, auth layer {alg}, no cache")
        if warm:
            ratio = warm["ok_per_sec"] / base["ok_per_sec"]
            check(
                f"layer {alg}, warm cache vs no layer",
                f"{warm['ok_per_sec']:.0f} / {base['ok_per_sec']:.0f} = {ratio:.0%}",
                "≥ 90%",
                ratio >= 0.9,
            )
        if cold:
            ratio = cold["ok_per_sec"] / base["ok_per_sec"]
            out.append(
                f"| layer {alg}, no cache vs no layer (informative) | "
                f"{cold['ok_per_sec']:.0f} / {base['ok_per_sec']:.0f} = {ratio:.0%} | – | |"
            )
v = get("auth-server Validate (PostgreSQL")
if v:
    check(
        "Validate on PostgreSQL, 64 in flight",
        f"{v['ok_per_sec']:.0f}/s, p99 {v['p99_ms']:.1f} ms",
        "≥ 10000/s, p99 ≤ 10 ms",
        v["ok_per_sec"] >= 10000 and v["p99_ms"] <= 10,
    )
r = get("auth-server Refresh (PostgreSQL")
if r:
    check("Refresh on PostgreSQL", f"{r['ok_per_sec']:.0f}/s", "≥ 2000/s", r["ok_per_sec"] >= 2000)
limit = get("argon2id limit")
login = get("auth-server Login (PostgreSQL), saturated")
if limit and login:
    ratio = login["ok_per_sec"] / limit["ok_per_sec"]
    check(
        "Login vs argon2 limit",
        f"{login['ok_per_sec']:.0f} / {limit['ok_per_sec']:.0f} = {ratio:.0%}",
        "≥ 85%",
        ratio >= 0.85,
    )
over = get("auth-server Login (PostgreSQL), 4x overload")
if over:
    shed = sum(over["errors"].values()) / over["seconds"]
    check(
        "Login at 4x overload sheds fast",
        f"{over['ok_per_sec']:.0f} ok/s, {shed:.0f} shed/s; p99 ok {over['p99_ms']:.0f} ms, "
        f"p99 shed {over['err_p99_ms']:.1f} ms",
        "p99 bounded (queue ÷ rate), refusals fast",
        over["p99_ms"] < 2000 and over["err_p99_ms"] < 100,
    )
idle = [x["idle_rss_mib"] for k, x in rows.items() if k.startswith("auth-server") and x["idle_rss_mib"]]
if idle:
    check("auth-server RSS idle", f"{max(idle):.1f} MiB (max over runs)", "≤ 50 MB", max(idle) * 1.048576 <= 50)
if login:
    cap = PERMITS * ARGON2_MIB + 50 / 1.048576
    check(
        "auth-server peak RSS, login saturation",
        f"{login['peak_rss_mib']:.0f} MiB",
        f"≤ {PERMITS} × {ARGON2_MIB:.0f} MiB + 50 MB = {cap:.0f} MiB",
        login["peak_rss_mib"] <= cap,
    )
tuned = get("auth-server Login (PostgreSQL), saturated, MALLOC")
if tuned:
    out.append(
        f"| same, MALLOC_ARENA_MAX=2 + MALLOC_MMAP_THRESHOLD_=1 MiB (informative) | "
        f"{tuned['peak_rss_mib']:.0f} MiB, {tuned['ok_per_sec']:.0f} logins/s | | |"
    )
for alg in ["HS256", "EdDSA"]:
    seed = get(f"seed stack GET /whoami, PyJWT {alg}")
    warm = get(f"greeter WhoAmI, auth layer {alg}, warm")
    cold = get(f"greeter WhoAmI, auth layer {alg}, no cache")
    if seed and warm and cold and seed["ok_per_sec"] > 0:
        check(
            f"verification vs seed stack ({alg})",
            f"warm {warm['ok_per_sec'] / seed['ok_per_sec']:.0f}×, "
            f"no cache {cold['ok_per_sec'] / seed['ok_per_sec']:.0f}× "
            f"(seed {seed['ok_per_sec']:.0f}/s, p99 {seed['p99_ms']:.0f} ms)",
            "≥ 10×",
            cold["ok_per_sec"] / seed["ok_per_sec"] >= 10,
        )
seed_login = get("seed stack POST /login, saturated")
if seed_login and login and seed_login["ok_per_sec"] > 0:
    out.append(
        f"| Login vs seed stack (informative: both are argon2-bound) | "
        f"{login['ok_per_sec'] / seed_login['ok_per_sec']:.2f}× ({seed_login['ok_per_sec']:.0f}/s) | | |"
    )

if len(sys.argv) > 2 and os.path.exists(sys.argv[2]):
    ns = {}
    with open(sys.argv[2]) as f:
        for line in f:
            m = re.match(r"test (\S+) +\.\.\. bench: +([\d,]+) ns/iter", line)
            if m:
                ns[m.group(1)] = int(m.group(2).replace(",", ""))
    for alg in ["HS256", "RS256", "EdDSA", "ES256"]:
        raw, ours = ns.get(f"verify/{alg}/raw_jsonwebtoken"), ns.get(f"verify/{alg}/verifier")
        if raw and ours:
            over = ours / raw - 1
            check(
                f"verifier overhead over raw jsonwebtoken ({alg})",
                f"{ours / 1000:.2f} µs vs {raw / 1000:.2f} µs = {over:+.0%}",
                "≤ 10%",
                over <= 0.10,
            )

print("\n".join(out))
