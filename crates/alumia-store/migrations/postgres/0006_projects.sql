-- Projects (spec 06 §1), the workspaces they are shared with, and files
-- (spec 06 §3): for now only each project's protected folder is written.
CREATE TABLE projects (
    id               TEXT PRIMARY KEY,
    org_id           TEXT NOT NULL REFERENCES orgs (id),
    workspace_id     TEXT NOT NULL,
    user_id          TEXT NOT NULL,           -- the creator
    name             TEXT NOT NULL,
    slug             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    prompt           TEXT NOT NULL DEFAULT '',
    emoji            TEXT NOT NULL DEFAULT '',
    visibility       TEXT NOT NULL CHECK (visibility IN ('team', 'private')),
    status           TEXT NOT NULL CHECK (status IN ('active', 'archived')),
    tags             TEXT NOT NULL DEFAULT '[]',
    metadata         TEXT NOT NULL DEFAULT '{}',
    share_token_hash TEXT,                    -- never returned; sharing comes later
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    deleted_at       BIGINT
);
CREATE UNIQUE INDEX projects_org_slug_key ON projects (org_id, slug) WHERE deleted_at IS NULL;
CREATE INDEX projects_org_updated_idx ON projects (org_id, updated_at);
CREATE UNIQUE INDEX projects_share_token_key ON projects (share_token_hash);

-- Workspaces a project is shared with, besides its own.
CREATE TABLE project_workspaces (
    project_id   TEXT NOT NULL REFERENCES projects (id),
    workspace_id TEXT NOT NULL,
    org_id       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (project_id, workspace_id)
);
CREATE INDEX project_workspaces_workspace_idx ON project_workspaces (org_id, workspace_id);

CREATE TABLE files (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES orgs (id),
    project_id     TEXT,
    parent_id      TEXT,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('file', 'folder', 'link')),
    mime_type      TEXT,
    size           BIGINT NOT NULL DEFAULT 0,
    sha256         TEXT,
    storage_key    TEXT,                      -- internal, never returned
    status         TEXT NOT NULL CHECK (status IN ('pending', 'ready')),
    system_kind    TEXT,                      -- e.g. projectFolder
    is_protected   BOOLEAN NOT NULL DEFAULT FALSE,
    target_file_id TEXT,
    tags           TEXT NOT NULL DEFAULT '[]',
    metadata       TEXT NOT NULL DEFAULT '{}',
    created_by     TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    deleted_at     BIGINT
);
CREATE INDEX files_org_parent_idx ON files (org_id, parent_id, name);
CREATE INDEX files_org_project_idx ON files (org_id, project_id);
CREATE INDEX chat_sessions_org_project_idx ON chat_sessions (org_id, project_id, updated_at);
