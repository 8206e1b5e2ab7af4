#!/usr/bin/env python3
"""Envoy ext_authz `Check` against `grpc.health.v1.Health/Check` on the same auth server, with h2load.

Starts target/release/auth-server on a throw-away PostgreSQL database (or SQLite with --db sqlite) with
AUTH_EXTAUTHZ_POLICY=deploy/extauthz-policy.toml, logs in once (curl, HTTP/2), writes the two
length-prefixed gRPC request bodies, then runs h2load against each in turn, alternating (health, Check of
WhoAmI with the token, Check of the public SayHello — decoding and answering without token work —,
health, ...). Latency percentiles come from
h2load's per-request log (--log-file). Prints one Markdown table; `--out FILE` also appends it.

usage: bench/extauthz.py [--binary target/release/auth-server] [--db postgres|sqlite]
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

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, payload):
    """A length-delimited protobuf field."""
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def grpc_frame(message):
    return b"\0" + len(message).to_bytes(4, "big") + message


def parse_fields(buf):
    """Length-delimited fields of one protobuf message (others skipped): {number: bytes}."""
    i, out = 0, {}
    while i < len(buf):
        key, shift = 0, 0
        while True:
            b = buf[i]; i += 1
            key |= (b & 0x7F) << shift; shift += 7
            if not b & 0x80:
                break
        number, wire = key >> 3, key & 7
        if wire == 2:
            n, shift = 0, 0
            while True:
                b = buf[i]; i += 1
                n |= (b & 0x7F) << shift; shift += 7
                if not b & 0x80:
                    break
            out[number] = buf[i:i + n]; i += n
        elif wire == 0:
            while buf[i] & 0x80:
                i += 1
            i += 1
        else:
            raise ValueError(f"wire type {wire}")
    return out


def check_request(path, token):
    """CheckRequest{attributes{request{http{method, path, host, headers}}}} as Envoy sends it."""
    headers = {
        ":authority": "greeter.demo.svc.cluster.local", ":method": "POST", ":path": path,
        ":scheme": "http", "content-type": "application/grpc", "te": "trailers",
        "user-agent": "grpc-go/1.70.0", "x-request-id": "5b1c2c9e-4a7e-4f5e-9d0c-1d6a3c0b9f11",
        "x-forwarded-proto": "http", "authorization": f"Bearer {token}",
    }
    http = field(2, "POST") + field(4, path) + field(5, "greeter.demo.svc.cluster.local") + field(8, "HTTP/2")
    for k, v in headers.items():
        http += field(3, field(1, k) + field(2, v))
    return field(1, field(4, field(2, http)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def curl_grpc(addr, method, message):
    out = subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", "-H", "content-type: application/grpc", "-H", "te: trailers",
         "--data-binary", "@-", "--output", "-", f"http://{addr}/{method}"],
        input=grpc_frame(message), capture_output=True, check=True).stdout
    return out[5:]


def h2load(addr, method, body_file, requests, clients, streams, log):
    Path(log).unlink(missing_ok=True)  # h2load appends to its log
    cmd = ["h2load", "-n", str(requests), "-c", str(clients), "-m", str(streams),
           "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", str(body_file),
           "--log-file", str(log), f"http://{addr}/{method}"]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(text.split("finished in")[1].split(",")[1].split("req/s")[0])
    ok = int(text.split("status codes:")[1].split("2xx")[0].strip())
    lat = sorted(int(line.split()[2]) for line in Path(log).read_text().splitlines() if line.strip())
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000
    return {"rps": rps, "ok": ok, "p50": pct(0.50), "p99": pct(0.99), "max": lat[-1] / 1000,
            "cmd": " ".join(c if " " not in c else repr(c) for c in cmd)}


def run_server(binary, db, tmp):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTH_")}
    dbname = None
    if db == "postgres":
        dbname = "auth_bench_extauthz_" + secrets.token_hex(4)
        subprocess.run(["psql", PG, "-qc", f"CREATE DATABASE {dbname}"], check=True)
        url = PG.rsplit("/", 1)[0] + "/" + dbname
    else:
        url = f"sqlite://{tmp}/auth.db"
    env.update({
        "AUTH_GRPC_ADDR": f"127.0.0.1:{port}", "AUTH_DATABASE_URL": url, "AUTH_DATA_DIR": str(tmp),
        "AUTH_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "AUTH_BOOTSTRAP_ADMIN_USERNAME": "admin", "AUTH_BOOTSTRAP_ADMIN_PASSWORD": "bench-admin-password-0123",
        "AUTH_EXTAUTHZ_POLICY": str(ROOT / "deploy/extauthz-policy.toml"),
        "RUST_LOG": "warn",
    })
    proc = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    addr = f"127.0.0.1:{port}"
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    time.sleep(0.5)
    return proc, addr, dbname


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(ROOT / "target/release/auth-server"))
    ap.add_argument("--db", default="postgres", choices=["postgres", "sqlite"])
    ap.add_argument("--requests", type=int, default=200_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out")
    a = ap.parse_args()
    if not shutil.which("h2load"):
        sys.exit("h2load missing: apt-get install -y nghttp2-client")
    rows, commands = [], []
    tmp = Path(tempfile.mkdtemp(prefix="extauthz-bench-"))
    for mode in ["view"]:  # revocations from the in-memory revocation view
        proc, addr, dbname = run_server(a.binary, a.db, tmp)
        try:
            login = curl_grpc(addr, "auth.v1.AuthService/Login",
                              field(1, "admin") + field(2, "bench-admin-password-0123"))
            token = parse_fields(login)[1].decode()
            path = "/demo.v1.GreeterService/WhoAmI"
            check_body = tmp / "check.bin"
            check_body.write_bytes(grpc_frame(check_request(path, token)))
            # The same request for a public method: decoding and answering, no token work (the floor).
            public_body = tmp / "public.bin"
            public_body.write_bytes(grpc_frame(check_request("/demo.v1.GreeterService/SayHello", token)))
            health_body = tmp / "health.bin"
            health_body.write_bytes(grpc_frame(b""))
            # One call first: it must be allowed (an OkHttpResponse, field 3; no DeniedHttpResponse, field 2)
            # and warms the caches.
            answer = parse_fields(curl_grpc(addr, "envoy.service.auth.v3.Authorization/Check",
                                            check_request(path, token)))
            assert 3 in answer and 2 not in answer, f"Check did not allow: {answer}"
            results = {"health": [], "check": [], "check, public method": []}
            for _ in range(a.rounds):
                for name, method, body in [("health", "grpc.health.v1.Health/Check", health_body),
                                           ("check", "envoy.service.auth.v3.Authorization/Check", check_body),
                                           ("check, public method", "envoy.service.auth.v3.Authorization/Check",
                                            public_body)]:
                    r = h2load(addr, method, body, a.requests, a.clients, a.streams, tmp / "h2load.log")
                    assert r["ok"] == a.requests, f"{name}: {r['ok']} of {a.requests} answered 200"
                    results[name].append(r)
                    commands.append(r["cmd"])
            h = statistics.mean(r["rps"] for r in results["health"])
            c = statistics.mean(r["rps"] for r in results["check"])
            p = statistics.mean(r["rps"] for r in results["check, public method"])
            for name, rs in results.items():
                for i, r in enumerate(rs):
                    rows.append(f"| {name} | {mode} | {i + 1} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.2f} |")
            rows.append(f"| **Check ÷ Health** | {mode} | mean of {a.rounds} | **{c / h:.0%}** ({c:.0f} / {h:.0f}) | | | |")
            rows.append(f"| public-method Check ÷ Health | {mode} | mean of {a.rounds} | {p / h:.0%} ({p:.0f} / {h:.0f}) | | | |")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            if dbname:
                subprocess.run(["psql", PG, "-qc", f"DROP DATABASE {dbname}"], check=False)
    shutil.rmtree(tmp, ignore_errors=True)
    table = "\n".join([
        f"{a.db}, {a.requests} calls per run, {a.clients} connections x {a.streams} streams",
        "",
        "| method | revocations | round | calls/s | p50 ms | p99 ms | max ms |",
        "|---|---|---:|---:|---:|---:|---:|",
        *rows, "", "```sh", *sorted(set(commands)), "```", ""])
    print(table)
    if a.out:
        with open(a.out, "a") as f:
            f.write(table)


if __name__ == "__main__":
    main()
