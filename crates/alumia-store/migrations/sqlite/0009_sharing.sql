-- Sharing (spec 06 §5). The share token is looked up by its SHA-256 and kept
-- sealed with the server secret, so `POST /share` can hand the same link
-- back without storing the credential in the clear.
ALTER TABLE projects ADD COLUMN share_token_sealed TEXT;
ALTER TABLE projects ADD COLUMN share_created_at BIGINT;

-- One invite link per project; a new one replaces it.
CREATE TABLE project_invites (
    project_id TEXT PRIMARY KEY REFERENCES projects (id),
    org_id     TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('viewer', 'editor')),
    created_by TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX project_invites_token_key ON project_invites (token_hash);

-- Users who joined a project through an invite: they see it whatever its
-- visibility and workspaces.
CREATE TABLE project_members (
    project_id TEXT NOT NULL REFERENCES projects (id),
    user_id    TEXT NOT NULL,
    org_id     TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('viewer', 'editor')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user_idx ON project_members (org_id, user_id);

-- One live protected folder per project: `GET /projects` backfills missing
-- folders, and concurrent lists must not make two.
CREATE UNIQUE INDEX files_project_folder_key ON files (project_id)
    WHERE system_kind = 'projectFolder' AND deleted_at IS NULL;
