-- Service accounts (issue 11): machine identities that obtain short-lived access tokens with a client
-- secret or an RFC 7523 client assertion. Times are seconds since the Unix epoch; booleans 0/1.

CREATE TABLE service_accounts (
    id                         TEXT PRIMARY KEY NOT NULL,
    -- The client id; unique among service accounts only (usernames are another name space).
    name                       TEXT    NOT NULL UNIQUE,
    description                TEXT    NOT NULL DEFAULT '',
    roles                      TEXT    NOT NULL DEFAULT '[]',
    audiences                  TEXT    NOT NULL DEFAULT '[]',
    disabled                   INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    -- HMAC-SHA-256 of the client secret under a key derived from the master key; never the secret.
    secret_hash                BLOB    NOT NULL,
    -- The rotated-out secret's MAC, accepted until previous_secret_expires_at.
    previous_secret_hash       BLOB,
    previous_secret_expires_at INTEGER,
    -- The account's tokens issued before this time are no longer accepted (disable, delete, secret
    -- rotation without overlap, key removal, a role or audience taken away).
    tokens_not_before          INTEGER NOT NULL DEFAULT 0,
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL
);

-- Public keys (JWK, public members only) for client assertions; at most 8 per account (enforced by
-- the store).
CREATE TABLE service_account_keys (
    account_id TEXT    NOT NULL REFERENCES service_accounts (id) ON DELETE CASCADE,
    kid        TEXT    NOT NULL,
    alg        TEXT    NOT NULL,
    public_jwk TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, kid)
);

-- The `jti` of every accepted client assertion until its `exp`: a second use is a replay, whichever
-- replica sees it (the primary key decides).
CREATE TABLE service_assertion_jtis (
    client     TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client, jti)
);

CREATE INDEX service_assertion_jtis_expires_at_idx ON service_assertion_jtis (expires_at);
