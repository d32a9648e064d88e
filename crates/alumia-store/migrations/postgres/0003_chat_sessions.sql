-- Chat sessions and their participants (messages come with the chat routes).
CREATE TABLE chat_sessions (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL REFERENCES orgs (id),
    workspace_id    TEXT NOT NULL,
    project_id      TEXT,
    agent_id        TEXT,
    user_id         TEXT NOT NULL,
    label           TEXT NOT NULL,
    status          TEXT NOT NULL,
    relationship    TEXT NOT NULL,
    running_turn    TEXT,                  -- JSON {id, startedAt, agentId} while a turn runs
    metadata        TEXT NOT NULL DEFAULT '{}',
    message_count   BIGINT NOT NULL DEFAULT 0,
    last_message_at BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    deleted_at      BIGINT
);
CREATE INDEX chat_sessions_org_updated_idx ON chat_sessions (org_id, updated_at);
CREATE INDEX chat_sessions_org_agent_idx ON chat_sessions (org_id, agent_id, updated_at);

CREATE TABLE session_participants (
    session_id     TEXT NOT NULL REFERENCES chat_sessions (id),
    kind           TEXT NOT NULL CHECK (kind IN ('user', 'agent')),
    participant_id TEXT NOT NULL,
    joined_at      BIGINT NOT NULL,
    PRIMARY KEY (session_id, kind, participant_id)
);
