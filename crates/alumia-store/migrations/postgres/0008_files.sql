-- Files (spec 06 §3), on top of the `files` table of 0006.
--
-- `blobs` counts the file rows that point at each stored blob (content is
-- addressed by SHA-256 and shared across rows, projects and orgs; it is not
-- tenant data). Deleting a blob is two-phase so that an upload of the same
-- bytes cannot lose them to a concurrent purge:
--   1. purge: refs -> 0 and `deleting_at` set, in the transaction that
--      deletes the last row;
--   2. the bytes are deleted, then the row (only while refs is still 0).
-- An upload adds its reference only to a row that is not being deleted (or
-- whose deletion is stale), and checks the bytes exist after committing.
CREATE TABLE blobs (
    sha256      TEXT PRIMARY KEY,
    size        BIGINT NOT NULL,
    refs        BIGINT NOT NULL CHECK (refs >= 0),
    deleting_at BIGINT,
    created_at  BIGINT NOT NULL
);

-- One live org root folder per org (created on first use).
CREATE UNIQUE INDEX files_org_root_key ON files (org_id) WHERE system_kind = 'orgRoot' AND deleted_at IS NULL;
CREATE INDEX files_org_sha_idx ON files (org_id, sha256);
