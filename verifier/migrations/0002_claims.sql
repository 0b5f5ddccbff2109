-- When this verifier's vote for (provider, period) was settled after the challenge
-- window (finalize if needed, then claimReport: bond back, reward credited).
ALTER TABLE chain_reports ADD COLUMN claimed_at_ms INTEGER;
