-- Initial schema of the auth server (PostgreSQL). Times are seconds since the Unix epoch.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT    NOT NULL,
    username_key  TEXT    NOT NULL CONSTRAINT users_username_key_uniq UNIQUE,
    password_hash TEXT,
    roles         TEXT    NOT NULL DEFAULT '[]',
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

CREATE TABLE sessions (
    id                  TEXT PRIMARY KEY,
    user_id             TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at          BIGINT NOT NULL,
    last_used_at        BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    revoked_at          BIGINT,
    revoke_reason       TEXT,
    -- Incremented at every rotation; a refresh token records the generation it was issued in.
    generation          BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_absolute_expires_at_idx ON sessions (absolute_expires_at);

CREATE TABLE refresh_tokens (
    token_hash BYTEA PRIMARY KEY,
    session_id TEXT   NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    generation BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT   NOT NULL,
    status          TEXT   NOT NULL CHECK (status IN ('current', 'next', 'retired')),
    private_key_enc BYTEA  NOT NULL,
    public_jwk      TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    publish_until   BIGINT
);

-- At most one current and one next key.
CREATE UNIQUE INDEX signing_keys_one_active_idx ON signing_keys (status)
    WHERE status IN ('current', 'next');
