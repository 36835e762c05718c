-- Files: one row per logical key. Names compare bytewise (COLLATE "C"), as in SQLite, so
-- keyset pagination and prefix ranges behave the same on both catalogs.
CREATE TABLE files (
    key               TEXT COLLATE "C" PRIMARY KEY,
    tenant_id         TEXT COLLATE "C" NOT NULL,
    category          TEXT COLLATE "C" NOT NULL,
    filename          TEXT COLLATE "C" NOT NULL,
    original_filename TEXT NOT NULL,
    bucket            TEXT NOT NULL,
    blob_key          TEXT COLLATE "C" NOT NULL,
    content_type      TEXT NOT NULL,
    size              BIGINT NOT NULL CHECK (size >= 0),
    sha256            TEXT NOT NULL,
    created_at        BIGINT NOT NULL -- microseconds since the Unix epoch
);

CREATE INDEX files_tenant_newest ON files (tenant_id, created_at DESC, key DESC);
CREATE INDEX files_tenant_category_newest ON files (tenant_id, category, created_at DESC, key DESC);
CREATE INDEX files_tenant_name ON files (tenant_id, filename, key);
CREATE INDEX files_tenant_category_name ON files (tenant_id, category, filename, key);
CREATE UNIQUE INDEX files_blob ON files (bucket, blob_key);

CREATE TABLE pending_uploads (
    bucket     TEXT NOT NULL,
    blob_key   TEXT COLLATE "C" NOT NULL,
    started_at BIGINT NOT NULL,
    PRIMARY KEY (bucket, blob_key)
);
CREATE INDEX pending_uploads_age ON pending_uploads (started_at);

CREATE TABLE blob_deletions (
    bucket      TEXT NOT NULL,
    blob_key    TEXT COLLATE "C" NOT NULL,
    enqueued_at BIGINT NOT NULL,
    PRIMARY KEY (bucket, blob_key)
);
CREATE INDEX blob_deletions_age ON blob_deletions (enqueued_at);
