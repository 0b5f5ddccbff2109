-- The latest verified heartbeat per provider. Prices are 39-digit
-- zero-padded decimal text (u128 wei) so text order is numeric order.
CREATE TABLE IF NOT EXISTS providers (
    peer_id            TEXT PRIMARY KEY,
    region             TEXT NOT NULL,
    price_per_gib_key  TEXT COLLATE "C" NOT NULL,
    price_per_hour_key TEXT COLLATE "C" NOT NULL,
    capacity_mbps      BIGINT NOT NULL,
    max_clients        BIGINT NOT NULL,
    seq                TEXT NOT NULL,
    timestamp_ms       BIGINT NOT NULL,
    last_seen_ms       BIGINT NOT NULL,
    offer_json         TEXT NOT NULL,
    signed_heartbeat   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS providers_region_price ON providers (region, price_per_gib_key);
CREATE INDEX IF NOT EXISTS providers_price ON providers (price_per_gib_key);
CREATE INDEX IF NOT EXISTS providers_last_seen ON providers (last_seen_ms);
