-- Identity: users, orgs, memberships, workspaces, API keys, browser sessions,
-- second factors and audit events. Ids are hyphenated UUID text; timestamps
-- are integer milliseconds since the epoch, the same on both engines.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,            -- stored case-folded
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,            -- argon2id PHC string
    preferences   TEXT NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE orgs (
    id         TEXT PRIMARY KEY,
    slug       TEXT NOT NULL,
    name       TEXT NOT NULL,
    settings   TEXT NOT NULL DEFAULT '{}',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX orgs_slug_key ON orgs (slug);

CREATE TABLE memberships (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    is_default  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    deleted_at  BIGINT
);
CREATE UNIQUE INDEX workspaces_org_slug_key ON workspaces (org_id, slug) WHERE deleted_at IS NULL;

CREATE TABLE workspace_members (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    user_id      TEXT NOT NULL REFERENCES users (id),
    added_at     BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_members_org_user_idx ON workspace_members (org_id, user_id);

CREATE TABLE api_keys (
    id                  TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL REFERENCES orgs (id),
    user_id             TEXT NOT NULL REFERENCES users (id),
    name                TEXT NOT NULL,
    prefix              TEXT NOT NULL,
    key_hash            TEXT NOT NULL,      -- SHA-256 hex of the full key
    scopes              TEXT NOT NULL,      -- space-separated
    created_via         TEXT NOT NULL,
    active_workspace_id TEXT,
    last_used_at        BIGINT,
    expires_at          BIGINT,
    revoked_at          BIGINT,
    created_at          BIGINT NOT NULL
);
CREATE UNIQUE INDEX api_keys_hash_key ON api_keys (key_hash);
CREATE INDEX api_keys_org_user_idx ON api_keys (org_id, user_id, created_at);

CREATE TABLE browser_sessions (
    id                  TEXT PRIMARY KEY,
    token_hash          TEXT NOT NULL,      -- SHA-256 hex of the cookie value
    user_id             TEXT NOT NULL REFERENCES users (id),
    current_org_id      TEXT,
    active_workspace_id TEXT,
    csrf_token          TEXT NOT NULL,
    auth_time           BIGINT NOT NULL,
    step_up_at          BIGINT,
    amr                 TEXT NOT NULL,      -- space-separated
    ip                  TEXT NOT NULL,
    user_agent          TEXT NOT NULL,
    last_seen_at        BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL
);
CREATE UNIQUE INDEX browser_sessions_token_key ON browser_sessions (token_hash);
CREATE INDEX browser_sessions_user_idx ON browser_sessions (user_id);

CREATE TABLE user_totp (
    user_id    TEXT PRIMARY KEY REFERENCES users (id),
    secret_enc TEXT NOT NULL,               -- AES-256-GCM under the server secret
    enabled    BOOLEAN NOT NULL DEFAULT FALSE,
    last_step  BIGINT,                      -- replay guard: only newer steps pass
    updated_at BIGINT
);

CREATE TABLE recovery_codes (
    user_id   TEXT NOT NULL REFERENCES users (id),
    code_hash TEXT NOT NULL,                -- HMAC-SHA256 under the server secret
    used_at   BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE audit_events (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id),
    type          TEXT NOT NULL,
    actor_kind    TEXT NOT NULL,
    actor_user_id TEXT,
    actor_key_id  TEXT,
    ip            TEXT NOT NULL,
    target_kind   TEXT NOT NULL,
    target_id     TEXT NOT NULL,
    data          TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX audit_events_org_idx ON audit_events (org_id, created_at);
