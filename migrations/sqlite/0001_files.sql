-- Files: one row per logical key. Timestamps are microseconds since the Unix epoch.
CREATE TABLE files (
    key               TEXT PRIMARY KEY NOT NULL,
    tenant_id         TEXT NOT NULL,
    category          TEXT NOT NULL,
    filename          TEXT NOT NULL,
    original_filename TEXT NOT NULL,
    bucket            TEXT NOT NULL,
    blob_key          TEXT NOT NULL,
    content_type      TEXT NOT NULL,
    size              INTEGER NOT NULL CHECK (size >= 0),
    sha256            TEXT NOT NULL,
    created_at        INTEGER NOT NULL
);

-- Keyset pagination for both sort orders, with and without a category filter.
CREATE INDEX files_tenant_newest ON files (tenant_id, created_at DESC, key DESC);
CREATE INDEX files_tenant_category_newest ON files (tenant_id, category, created_at DESC, key DESC);
CREATE INDEX files_tenant_name ON files (tenant_id, filename, key);
CREATE INDEX files_tenant_category_name ON files (tenant_id, category, filename, key);

-- Bytes being written whose row is not committed yet (reconcile finishes or removes them).
CREATE TABLE pending_uploads (
    bucket     TEXT NOT NULL,
    blob_key   TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    PRIMARY KEY (bucket, blob_key)
);

-- Outbox: bytes no row points to any more, to be removed from the blob store.
CREATE TABLE blob_deletions (
    bucket      TEXT NOT NULL,
    blob_key    TEXT NOT NULL,
    enqueued_at INTEGER NOT NULL,
    PRIMARY KEY (bucket, blob_key)
);
CREATE INDEX blob_deletions_age ON blob_deletions (enqueued_at);
