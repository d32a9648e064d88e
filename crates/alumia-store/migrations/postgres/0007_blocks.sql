-- Blocks and the project canvas (spec 06 §2): blocks (project_id NULL for
-- org-context blocks), stored edges between canvas nodes, positions of
-- session nodes, and the per-turn block revisions restore-last-run uses.
CREATE TABLE blocks (
    id                    TEXT PRIMARY KEY,
    org_id                TEXT NOT NULL REFERENCES orgs (id),
    project_id            TEXT,
    type                  TEXT NOT NULL,
    title                 TEXT NOT NULL DEFAULT '',
    data                  TEXT NOT NULL,        -- JSON, at most 100 KB
    x                     BIGINT NOT NULL,
    y                     BIGINT NOT NULL,
    width                 BIGINT NOT NULL,
    height                BIGINT NOT NULL,
    created_by_kind       TEXT NOT NULL CHECK (created_by_kind IN ('user', 'agent')),
    created_by_id         TEXT NOT NULL,
    created_by_session_id TEXT,
    created_by_turn_id    TEXT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,      -- the revision: strictly increases
    deleted_at            BIGINT
);
CREATE INDEX blocks_org_project_created_idx ON blocks (org_id, project_id, created_at, id);

-- User and agent edges; derived edges are computed, never stored. Hard delete.
CREATE TABLE project_edges (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    project_id TEXT NOT NULL,
    from_kind  TEXT NOT NULL CHECK (from_kind IN ('block', 'session')),
    from_id    TEXT NOT NULL,
    to_kind    TEXT NOT NULL CHECK (to_kind IN ('block', 'session')),
    to_id      TEXT NOT NULL,
    label      TEXT NOT NULL DEFAULT '',
    created_by_kind TEXT NOT NULL,
    created_by_id   TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX project_edges_org_project_idx ON project_edges (org_id, project_id, created_at);

-- Where a session node sits on its project's canvas (blocks carry their own).
CREATE TABLE canvas_positions (
    org_id     TEXT NOT NULL,
    project_id TEXT NOT NULL,
    node_kind  TEXT NOT NULL CHECK (node_kind IN ('session')),
    node_id    TEXT NOT NULL,
    x          BIGINT NOT NULL,
    y          BIGINT NOT NULL,
    width      BIGINT NOT NULL,
    height     BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, node_kind, node_id)
);

-- One row per agent write: the block as it was before (NULL: the turn created it).
CREATE TABLE block_revisions (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL,
    block_id   TEXT NOT NULL,
    turn_id    TEXT NOT NULL,
    session_id TEXT,
    before_json TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX block_revisions_turn_idx ON block_revisions (org_id, turn_id, created_at);
