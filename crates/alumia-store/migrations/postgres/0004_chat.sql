-- Messages, turns and their event logs, idempotency records, BYOK provider
-- keys and peer messages (spec 03 §3–§5, 02 §8, 09 §5).
CREATE TABLE chat_messages (
    session_id    TEXT NOT NULL REFERENCES chat_sessions (id),
    id            TEXT NOT NULL,             -- uuid, or the client's UIMessage id
    org_id        TEXT NOT NULL,
    seq           BIGINT NOT NULL,           -- order in the session, from 1
    role          TEXT NOT NULL,
    parts         TEXT NOT NULL,             -- JSON array of UIMessage parts
    text          TEXT NOT NULL,
    author_kind   TEXT NOT NULL,
    author_id     TEXT,
    status        TEXT NOT NULL,
    model         TEXT,
    finish_reason TEXT,
    usage         TEXT,
    metadata      TEXT NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (session_id, id)
);
CREATE UNIQUE INDEX chat_messages_seq_idx ON chat_messages (session_id, seq);

CREATE TABLE turns (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL,
    session_id     TEXT NOT NULL REFERENCES chat_sessions (id),
    agent_id       TEXT NOT NULL,
    message_id     TEXT NOT NULL,
    model          TEXT NOT NULL,
    status         TEXT NOT NULL,            -- running | complete | error | cancelled
    finish_reason  TEXT,
    stop_requested BOOLEAN NOT NULL DEFAULT FALSE,
    started_at     BIGINT NOT NULL,
    heartbeat_at   BIGINT NOT NULL,
    ended_at       BIGINT,
    last_seq       BIGINT NOT NULL DEFAULT -1
);
CREATE INDEX turns_status_heartbeat_idx ON turns (status, heartbeat_at);
CREATE INDEX turns_session_idx ON turns (session_id, started_at);

-- The per-turn log a reattaching client replays; pruned 24 h after the end.
CREATE TABLE turn_events (
    turn_id TEXT NOT NULL REFERENCES turns (id),
    seq     BIGINT NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (turn_id, seq)
);

CREATE TABLE idempotency_keys (
    org_id      TEXT NOT NULL,
    idem_key    TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state       TEXT NOT NULL,               -- in_flight | done
    status      INTEGER,
    body        TEXT,
    location    TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, idem_key)
);

CREATE TABLE provider_keys (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    provider     TEXT NOT NULL,
    label        TEXT NOT NULL,
    key_sealed   TEXT NOT NULL,
    key_hint     TEXT NOT NULL,
    base_url     TEXT,
    created_by   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX provider_keys_org_provider_idx ON provider_keys (org_id, provider);

CREATE TABLE peer_messages (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL,
    session_id    TEXT NOT NULL REFERENCES chat_sessions (id),
    from_agent_id TEXT NOT NULL,
    to_agent_id   TEXT NOT NULL,
    text          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    read_at       BIGINT
);
CREATE INDEX peer_messages_to_idx ON peer_messages (org_id, to_agent_id, read_at);
CREATE INDEX peer_messages_from_idx ON peer_messages (org_id, from_agent_id);
