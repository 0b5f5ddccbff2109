-- Verifier reports as received (the JSON body, whose EIP-712 signature was
-- checked), one per (provider, period, verifier). `passed` is 0 or 1.
CREATE TABLE IF NOT EXISTS reports (
    provider     TEXT NOT NULL,
    period       BIGINT NOT NULL,
    verifier     TEXT NOT NULL,
    passed       BIGINT NOT NULL,
    received_ms  BIGINT NOT NULL,
    body         TEXT NOT NULL,
    PRIMARY KEY (provider, period, verifier)
);
CREATE INDEX IF NOT EXISTS reports_by_provider ON reports (provider, period);
