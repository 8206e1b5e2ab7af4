-- Initial schema of the auth server (SQLite). Times are seconds since the Unix epoch; booleans 0/1.

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT    NOT NULL,
    username_key  TEXT    NOT NULL UNIQUE,
    password_hash TEXT,
    roles         TEXT    NOT NULL DEFAULT '[]',
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    id                  TEXT PRIMARY KEY NOT NULL,
    user_id             TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at          INTEGER NOT NULL,
    last_used_at        INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    revoked_at          INTEGER,
    revoke_reason       TEXT,
    -- Incremented at every rotation; a refresh token records the generation it was issued in.
    generation          INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_absolute_expires_at_idx ON sessions (absolute_expires_at);

CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY NOT NULL,
    session_id TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    generation INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY NOT NULL,
    alg             TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('current', 'next', 'retired')),
    private_key_enc BLOB    NOT NULL,
    public_jwk      TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    publish_until   INTEGER
);

-- At most one current and one next key.
CREATE UNIQUE INDEX signing_keys_one_active_idx ON signing_keys (status)
    WHERE status IN ('current', 'next');
