"""The seed tutorials' stack doing what auth-server and the auth layer do, for a side-by-side run.

POST /login  {"username", "password"}  -> argon2id check (m=19456 KiB, t=2, p=1, as auth-server) and a
                                          signed JWT (PyJWT) with the same claims as auth-server's.
GET  /whoami (Authorization: Bearer)   -> PyJWT verifies the token (alg, iss, aud, exp, nbf, sub
                                          required) on every call, the usual `@token_required` decorator.
GET  /hello                            -> no auth: the framework's own floor.

SEED_ALG=HS256|EdDSA selects the algorithm. Serve with gunicorn --preload so that all workers share the
key generated at import. Benchmark use only.
"""

import os
import secrets
import time
import uuid
from functools import wraps

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask, g, jsonify, request

ALG = os.environ.get("SEED_ALG", "HS256")
ISSUER = "auth-server"
AUDIENCE = "internal"
TTL = 600

if ALG == "HS256":
    SIGNING_KEY = VERIFY_KEY = secrets.token_bytes(32)
elif ALG == "EdDSA":
    SIGNING_KEY = Ed25519PrivateKey.generate()
    VERIFY_KEY = SIGNING_KEY.public_key()
else:
    raise SystemExit(f"SEED_ALG={ALG}: only HS256 and EdDSA")

hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
USERS = {
    os.environ.get("SEED_USERNAME", "bench"): {
        "id": str(uuid.uuid4()),
        "hash": hasher.hash(os.environ.get("SEED_PASSWORD", "bench-password-1")),
        "roles": ["admin"],
    }
}
DUMMY_HASH = hasher.hash(secrets.token_hex(16))

app = Flask(__name__)


@app.get("/hello")
def hello():
    return jsonify(message="Hello, world!")


@app.post("/login")
def login():
    body = request.get_json(silent=True) or {}
    user = USERS.get(str(body.get("username", "")))
    try:
        hasher.verify(user["hash"] if user else DUMMY_HASH, str(body.get("password", "")))
    except VerificationError:
        return jsonify(error="invalid credentials"), 401
    if user is None:
        return jsonify(error="invalid credentials"), 401
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": user["id"],
        "aud": AUDIENCE,
        "exp": now + TTL,
        "iat": now,
        "nbf": now,
        "jti": uuid.uuid4().hex,
        "sid": str(uuid.uuid4()),
        "roles": user["roles"],
        "username": body["username"],
        "client_id": "auth-server",
    }
    token = jwt.encode(
        claims, SIGNING_KEY, algorithm=ALG, headers={"typ": "at+jwt", "kid": "k1"}
    )
    return jsonify(access_token=token, token_type="Bearer", expires_in=TTL)


def token_required(f):
    @wraps(f)
    def wrapper(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return jsonify(error="invalid token"), 401
        try:
            g.claims = jwt.decode(
                token,
                VERIFY_KEY,
                algorithms=[ALG],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=30,
                options={"require": ["exp", "nbf", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError:
            return jsonify(error="invalid token"), 401
        return f(*args, **kwargs)

    return wrapper


@app.get("/whoami")
@token_required
def whoami():
    c = g.claims
    return jsonify(subject=c["sub"], username=c["username"], roles=c["roles"])
