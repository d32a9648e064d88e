-- Agents. Ala (is_default) has no workspace and is visible everywhere; the
-- restriction lists and settings are JSON text on both engines.
CREATE TABLE agents (
    id                   TEXT PRIMARY KEY,
    org_id               TEXT NOT NULL REFERENCES orgs (id),
    workspace_id         TEXT,
    name                 TEXT NOT NULL,
    slug                 TEXT NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    avatar               TEXT NOT NULL DEFAULT '',
    model                TEXT,                    -- NULL: the org default (always for Ala)
    system_prompt        TEXT NOT NULL DEFAULT '',
    allowed_tools        TEXT NOT NULL,
    allowed_peers        TEXT NOT NULL,
    allowed_connectors   TEXT NOT NULL,
    skills               TEXT NOT NULL DEFAULT '[]',
    shared_workspace_ids TEXT NOT NULL DEFAULT '[]',
    settings             TEXT NOT NULL DEFAULT '{}',
    is_default           BOOLEAN NOT NULL DEFAULT FALSE,
    is_active            BOOLEAN NOT NULL DEFAULT TRUE,
    created_by           TEXT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    deleted_at           BIGINT
);
CREATE UNIQUE INDEX agents_org_slug_key ON agents (org_id, slug) WHERE deleted_at IS NULL;
CREATE INDEX agents_org_updated_idx ON agents (org_id, updated_at);
