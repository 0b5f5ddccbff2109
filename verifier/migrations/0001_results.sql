-- One row per probe: what was measured, the verdict and the signed report.
CREATE TABLE probes (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at_ms   INTEGER NOT NULL,
    target          TEXT    NOT NULL,
    provider        TEXT    NOT NULL,   -- 0x-address, lowercase
    period          INTEGER,            -- report period; NULL without a chain
    metrics_json    TEXT    NOT NULL,
    handshake_ms    REAL,
    rtt_p50_ms      REAL,
    loss_pct        REAL    NOT NULL,
    throughput_mbps REAL,
    passed          INTEGER NOT NULL,
    reasons_json    TEXT    NOT NULL,
    metrics_hash    TEXT,               -- 0x-hex; NULL when unsigned
    signature       TEXT,               -- 0x-hex EIP-712 signature; NULL when unsigned
    verifier        TEXT                -- signer address; NULL when unsigned
);
CREATE INDEX probes_provider_period ON probes (provider, period);

-- At most one on-chain report per provider and period (the contract allows one).
CREATE TABLE chain_reports (
    provider        TEXT    NOT NULL,
    period          INTEGER NOT NULL,
    probe_id        INTEGER NOT NULL REFERENCES probes (id),
    tx_hash         TEXT,               -- NULL while in flight, or when found on chain
    recorded_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (provider, period)
);

-- Delivery of each signed report to each fullnode.
CREATE TABLE publications (
    probe_id        INTEGER NOT NULL REFERENCES probes (id),
    fullnode        TEXT    NOT NULL,
    delivered       INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    detail          TEXT    NOT NULL,
    at_ms           INTEGER NOT NULL
);
