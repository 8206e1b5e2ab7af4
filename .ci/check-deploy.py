#!/usr/bin/env python3
"""Checks the deployment files against the server they deploy, beyond what kubernetes-validate sees:
every AUTH_* setting they set exists (`auth-server serve --help`), the ports and probe paths agree with
AUTH_GRPC_ADDR / AUTH_HTTP_ADDR, the termination grace covers preStop + AUTH_SHUTDOWN_GRACE, and the
issuer and JWKS URL are the same in the Kubernetes, Istio and Envoy files.

usage: check-deploy.py AUTH_SERVER_BINARY
"""
import re
import subprocess
import sys
from pathlib import Path

import yaml

root = Path(__file__).resolve().parent.parent / "deploy"
binary = sys.argv[1]
errors = []


def check(ok, msg):
    if not ok:
        errors.append(msg)


def load(path):
    return [d for d in yaml.safe_load_all((root / path).read_text()) if d]


help_text = subprocess.run([binary, "serve", "--help"], capture_output=True, text=True, check=True).stdout
known = set(re.findall(r"env: (AUTH_[A-Z0-9_]+)", help_text))
check(len(known) > 30, f"could not read the settings from `{binary} serve --help`")

config = load("kubernetes/configmap.yaml")[0]["data"]
secret = load("kubernetes/secret.example.yaml")[0]["stringData"]
secret_text = (root / "kubernetes/secret.example.yaml").read_text()
for name in list(config) + list(secret) + re.findall(r"#\s*(AUTH_[A-Z0-9_]+):", secret_text):
    check(name in known, f"{name} is not a setting of auth-server serve")

deploy = load("kubernetes/deployment.yaml")[0]
pod = deploy["spec"]["template"]["spec"]
container = pod["containers"][0]
ports = {p["name"]: p["containerPort"] for p in container["ports"]}
check(config["AUTH_GRPC_ADDR"].endswith(f":{ports['grpc']}"), "grpc containerPort != AUTH_GRPC_ADDR")
check(config["AUTH_HTTP_ADDR"].endswith(f":{ports['http']}"), "http containerPort != AUTH_HTTP_ADDR")
for probe, path in [("readinessProbe", "/healthz/ready"), ("livenessProbe", "/healthz/live")]:
    got = container[probe]["httpGet"]
    check(got == {"path": path, "port": "http"}, f"{probe} should GET {path} on the http port, not {got}")
pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
grace = int(config["AUTH_SHUTDOWN_GRACE"])
check(
    pod["terminationGracePeriodSeconds"] >= pre_stop + grace,
    f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} < preStop {pre_stop} + AUTH_SHUTDOWN_GRACE {grace}",
)
check(config.get("AUTH_SKIP_MIGRATIONS") == "true", "the Deployment should leave migrations to the Job")
job = load("kubernetes/migrate-job.yaml")[0]["spec"]["template"]["spec"]["containers"][0]
check(job["args"] == ["migrate"], "the migration Job should run `auth-server migrate`")

issuer = config["AUTH_ISSUER"]
jwks = config["AUTH_PUBLIC_URL"].rstrip("/") + "/.well-known/jwks.json"
rule = load("istio/requestauthentication.yaml")[0]["spec"]["jwtRules"][0]
check(rule["issuer"] == issuer, "Istio RequestAuthentication issuer != AUTH_ISSUER")
check(rule["jwksUri"] == jwks, "Istio RequestAuthentication jwksUri != AUTH_PUBLIC_URL/.well-known/jwks.json")
check(rule["audiences"] == [config["AUTH_AUDIENCE"]], "Istio audiences != AUTH_AUDIENCE")
envoy = (root / "envoy/envoy.yaml").read_text()
check(f'issuer: "{issuer}"' in envoy, "envoy.yaml jwt_authn issuer != AUTH_ISSUER")
check(f'uri: "{jwks}"' in envoy, "envoy.yaml remote_jwks uri != AUTH_PUBLIC_URL/.well-known/jwks.json")

for e in errors:
    print(f"deploy: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
