-- The provider's order sessions (one row per order it took on) and the
-- WireGuard peers it added to its data plane. Amounts are U256 wei as
-- 78-digit zero-padded decimal text, so text order is numeric order and a
-- write can refuse to lower them (`WHERE best_amount < $new`).
CREATE TABLE IF NOT EXISTS provider_sessions (
    order_id        TEXT PRIMARY KEY,
    client          TEXT NOT NULL,
    client_peer     TEXT NOT NULL,
    wg_key          TEXT NOT NULL,
    address         TEXT NOT NULL,
    escrow          TEXT NOT NULL,
    state           TEXT NOT NULL,
    best_amount     TEXT,
    best_signature  TEXT,
    redeemed        TEXT NOT NULL,
    accepted_at_ms  BIGINT NOT NULL,
    last_voucher_ms BIGINT NOT NULL,
    updated_ms      BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS provider_peers (
    wg_key    TEXT PRIMARY KEY,
    order_id  TEXT NOT NULL,
    address   TEXT NOT NULL,
    added_ms  BIGINT NOT NULL
);
