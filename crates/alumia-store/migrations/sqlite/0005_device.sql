-- Device login (RFC 8628, spec 01 §10). The device code is stored only as
-- its SHA-256; the user code (8 letters, no dash) is unique among pending
-- codes. A code belongs to no org until it is approved: the decision sets
-- user_id and org_id, the exchange sets api_key_id, in the same transaction
-- as the key's insert.
CREATE TABLE device_codes (
    id               TEXT PRIMARY KEY,
    device_code_hash TEXT NOT NULL,          -- SHA-256 hex of the device code
    user_code        TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    scopes           TEXT NOT NULL,          -- requested, space-separated
    device_name      TEXT,
    request_ip       TEXT NOT NULL,
    status           TEXT NOT NULL
        CHECK (status IN ('pending', 'approved', 'denied', 'exchanged', 'expired')),
    interval_secs    BIGINT NOT NULL,        -- grows by 5 with every slow_down
    last_polled_at   BIGINT,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    user_id          TEXT REFERENCES users (id),
    org_id           TEXT REFERENCES orgs (id),
    granted_scopes   TEXT NOT NULL DEFAULT '',
    decided_at       BIGINT,
    api_key_id       TEXT,
    exchanged_at     BIGINT
);
CREATE UNIQUE INDEX device_codes_hash_key ON device_codes (device_code_hash);
CREATE UNIQUE INDEX device_codes_pending_user_code_key ON device_codes (user_code) WHERE status = 'pending';
CREATE INDEX device_codes_user_code_idx ON device_codes (user_code, created_at);
CREATE INDEX device_codes_expires_idx ON device_codes (expires_at);
