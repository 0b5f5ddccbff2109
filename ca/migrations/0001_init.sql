-- DeCA operator state. The Merkle log is rebuilt in memory from log_leaves on start.
CREATE TABLE challenges (
    id          TEXT PRIMARY KEY,
    body        TEXT    NOT NULL,  -- JSON of the Challenge
    secret      BLOB    NOT NULL,  -- CA ephemeral X25519 secret, single use
    expires_at  INTEGER NOT NULL,
    used        INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE log_leaves (
    idx   INTEGER PRIMARY KEY,
    leaf  BLOB NOT NULL
);

CREATE TABLE certs (
    serial         TEXT PRIMARY KEY,      -- lowercase hex
    cert_hash      TEXT NOT NULL UNIQUE,  -- hex SHA-256 of DER
    der            BLOB NOT NULL,
    binding        TEXT NOT NULL,         -- JSON of the NodeBinding
    not_before     INTEGER NOT NULL,
    not_after      INTEGER NOT NULL,
    log_index      INTEGER NOT NULL REFERENCES log_leaves(idx),
    logged_at      INTEGER NOT NULL
);

CREATE TABLE revocations (
    serial      TEXT PRIMARY KEY REFERENCES certs(serial),
    revoked_at  INTEGER NOT NULL,
    by_holder   INTEGER NOT NULL,
    log_index   INTEGER NOT NULL REFERENCES log_leaves(idx),
    on_chain    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE anchors (
    tree_size    INTEGER PRIMARY KEY,
    root         TEXT    NOT NULL,
    anchored_at  INTEGER NOT NULL
);

CREATE TABLE counters (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);
