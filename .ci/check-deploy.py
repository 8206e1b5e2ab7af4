#!/usr/bin/env python3
"""Checks the deployment files against the server they deploy, beyond what kubernetes-validate sees:
every AUTH_* setting they set exists (`auth-server serve --help`), the ports and probe paths agree with
AUTH_GRPC_ADDR / AUTH_HTTP_ADDR, the termination grace covers preStop + AUTH_SHUTDOWN_GRACE, and the
issuer and JWKS URL are the same in the Kubernetes, Istio and Envoy files, and Envoy external authorization
is wired consistently (the mounted policy file is deploy/extauthz-policy.toml and parses as TOML with only
the format's top-level keys — the e2e suite parses it with the server's own parser —, AUTH_EXTAUTHZ_POLICY
points at the mount, the Istio provider and the Envoy cluster name the gRPC port, both fail closed).

usage: check-deploy.py AUTH_SERVER_BINARY
"""
import re
import subprocess
import sys
import tomllib
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

# Envoy external authorization: the policy file, its mount, the Istio provider and the Envoy filter.
policy_text = (root / "extauthz-policy.toml").read_text()
try:
    policy = tomllib.loads(policy_text)
    extra = set(policy) - {"default", "presets", "methods"}
    check(not extra, f"extauthz-policy.toml: unknown top-level keys {sorted(extra)}")
except tomllib.TOMLDecodeError as e:
    check(False, f"extauthz-policy.toml is not TOML: {e}")
policy_map = load("kubernetes/configmap-extauthz-policy.yaml")[0]
check(policy_map["data"].get("policy.toml") == policy_text,
      "configmap-extauthz-policy.yaml's policy.toml differs from deploy/extauthz-policy.toml")
volume = next((v for v in pod["volumes"] if v.get("configMap", {}).get("name") == policy_map["metadata"]["name"]), None)
check(volume is not None, "no volume of deployment.yaml mounts the ext_authz policy ConfigMap")
if volume:
    mount = next((m for m in container["volumeMounts"] if m["name"] == volume["name"]), None)
    item = volume["configMap"]["items"][0]
    check(mount is not None and item["key"] == "policy.toml", "the ext_authz policy volume is not mounted")
    if mount:
        path = mount["mountPath"].rstrip("/") + "/" + item["path"]
        check(config.get("AUTH_EXTAUTHZ_POLICY") == path, f"AUTH_EXTAUTHZ_POLICY != the mounted file {path}")
service = load("kubernetes/service.yaml")[0]
grpc_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc")
host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
custom = load("istio/authorizationpolicy-extauthz.yaml")[0]["spec"]
providers = load("istio/meshconfig-extauthz.yaml")[0]["spec"]["meshConfig"]["extensionProviders"]
provider = next((p for p in providers if p["name"] == custom["provider"]["name"]), None)
check(custom["action"] == "CUSTOM" and provider is not None,
      "the CUSTOM AuthorizationPolicy names no extensionProviders entry")
if provider:
    grpc = provider["envoyExtAuthzGrpc"]
    check((grpc["service"], grpc["port"]) == (host, grpc_port), f"ext_authz provider is not {host}:{grpc_port}")
    check(grpc.get("failOpen") is False, "the ext_authz provider must not fail open")
    check(config["AUTH_GRPC_ADDR"].endswith(f":{grpc_port}"), "Service grpc port != AUTH_GRPC_ADDR")
envoy_doc = yaml.safe_load(envoy)
filters = envoy_doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
ext_authz = next((f["typed_config"] for f in filters if f["name"] == "envoy.filters.http.ext_authz"), None)
check(ext_authz is not None, "envoy.yaml has no ext_authz filter")
if ext_authz:
    check(ext_authz.get("failure_mode_allow") is False, "envoy.yaml ext_authz must not fail open")
    check(ext_authz.get("transport_api_version") == "V3", "envoy.yaml ext_authz must use the V3 API")
    cluster_name = ext_authz["grpc_service"]["envoy_grpc"]["cluster_name"]
    cluster = next((c for c in envoy_doc["static_resources"]["clusters"] if c["name"] == cluster_name), None)
    check(cluster is not None and "http2_protocol_options" in str(cluster), f"envoy.yaml: {cluster_name} is no HTTP/2 cluster")
    if cluster:
        address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        check(address["socket_address"]["port_value"] == grpc_port, f"envoy.yaml: {cluster_name} is not the gRPC port")

for e in errors:
    print(f"deploy: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
