#!/usr/bin/env python3
"""`auth.v1.AuthService/Validate` against `grpc.health.v1.Health/Check` on the same auth server, with h2load.

Starts an auth-server release binary on a throw-away PostgreSQL database (or SQLite with --db sqlite),
logs in once (curl, HTTP/2), writes the two length-prefixed gRPC request bodies, then runs h2load against
each in turn, alternating (health, Validate, health, Validate, ...) so the machine's drift hits both alike.
Give several binaries (`--binary A --binary B`, e.g. the one built from main and the one from a branch) to
compare them in one run: each gets its own server and database, rounds interleaved per binary. Latency
percentiles come from h2load's per-request log. Prints one Markdown table; `--out FILE` also appends it.
The h2load driving and the protobuf helpers are bench/extauthz.py's.

usage: bench/validate.py [--binary target/release/auth-server ...] [--db postgres|sqlite]
                         [--requests 200000] [--clients 4] [--streams 16] [--rounds 2]
h2load: apt-get install -y nghttp2-client
"""
import argparse
import base64
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extauthz import ROOT, PG, curl_grpc, field, free_port, grpc_frame, h2load, parse_fields  # noqa: E402


def run_server(binary, db, tmp, tag):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    dbname = None
    if db == "postgres":
        dbname = "auth_bench_validate_" + secrets.token_hex(4)
        subprocess.run(["psql", PG, "-qc", f"CREATE DATABASE {dbname}"], check=True)
        url = PG.rsplit("/", 1)[0] + "/" + dbname
    else:
        url = f"sqlite://{tmp}/auth-{tag}.db"
    env.update({
        "AUTH_GRPC_ADDR": f"127.0.0.1:{port}", "AUTH_DATABASE_URL": url, "AUTH_DATA_DIR": str(tmp),
        "AUTH_HTTP_ADDR": "", "AUTH_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "AUTH_BOOTSTRAP_ADMIN_USERNAME": "admin", "AUTH_BOOTSTRAP_ADMIN_PASSWORD": "bench-admin-password-0123",
        "RUST_LOG": "warn",
    })
    proc = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    time.sleep(0.5)
    return proc, f"127.0.0.1:{port}", dbname


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", action="append")
    ap.add_argument("--db", default="postgres", choices=["postgres", "sqlite"])
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out")
    a = ap.parse_args()
    binaries = a.binary or [str(ROOT / "target/release/auth-server")]
    if not shutil.which("h2load"):
        sys.exit("h2load missing: apt-get install -y nghttp2-client")
    tmp = Path(tempfile.mkdtemp(prefix="validate-bench-"))
    servers, rows, commands = [], [], []
    try:
        for i, binary in enumerate(binaries):
            proc, addr, dbname = run_server(binary, a.db, tmp, i)
            servers.append((binary, proc, addr, dbname))
        bodies = {}
        for i, (binary, _, addr, _) in enumerate(servers):
            login = curl_grpc(addr, "auth.v1.AuthService/Login",
                              field(1, "admin") + field(2, "bench-admin-password-0123"))
            token = parse_fields(login)[1].decode()
            body = tmp / f"validate-{i}.bin"
            body.write_bytes(grpc_frame(field(1, token)))
            # One call first: the token must be valid (claims, field 2, are set only then).
            answer = parse_fields(curl_grpc(addr, "auth.v1.AuthService/Validate", field(1, token)))
            assert 2 in answer, f"{binary}: Validate did not accept the token: {answer}"
            bodies[i] = body
        health = tmp / "health.bin"
        health.write_bytes(grpc_frame(b""))
        results = {(i, name): [] for i in range(len(servers)) for name in ("health", "validate")}
        for _ in range(a.rounds):
            for i, (_, _, addr, _) in enumerate(servers):
                for name, method, body in [("health", "grpc.health.v1.Health/Check", health),
                                           ("validate", "auth.v1.AuthService/Validate", bodies[i])]:
                    r = h2load(addr, method, body, a.requests, a.clients, a.streams, tmp / "h2load.log")
                    assert r["ok"] == a.requests, f"{name}: {r['ok']} of {a.requests} answered 200"
                    results[(i, name)].append(r)
                    commands.append(r["cmd"].replace(addr, "127.0.0.1:PORT").replace(str(tmp), "TMP"))
        for i, (binary, _, _, _) in enumerate(servers):
            label = Path(binary).resolve().parent.parent.name  # the target directory
            for name in ("health", "validate"):
                for n, r in enumerate(results[(i, name)]):
                    rows.append(f"| {label} | {name} | {n + 1} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.2f} |")
            h = statistics.mean(r["rps"] for r in results[(i, "health")])
            v = statistics.mean(r["rps"] for r in results[(i, "validate")])
            rows.append(f"| {label} | **Validate ÷ Health** | mean of {a.rounds} | **{v / h:.0%}** ({v:.0f} / {h:.0f}) | | | |")
    finally:
        for _, proc, _, dbname in servers:
            proc.terminate()
            proc.wait(timeout=30)
            if dbname:
                subprocess.run(["psql", PG, "-qc", f"DROP DATABASE {dbname}"], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    table = "\n".join([
        f"{a.db}, {a.requests} calls per run, {a.clients} connections x {a.streams} streams",
        "",
        "| binary | method | round | calls/s | p50 ms | p99 ms | max ms |",
        "|---|---|---:|---:|---:|---:|---:|",
        *rows, "", "```sh", *sorted(set(commands)), "```", ""])
    print(table)
    if a.out:
        with open(a.out, "a") as f:
            f.write(table)


if __name__ == "__main__":
    main()
