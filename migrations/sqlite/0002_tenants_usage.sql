-- Registered tenants and their status (COFFER_TENANTS=registered refuses others).
CREATE TABLE tenants (
    tenant_id  TEXT PRIMARY KEY NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at INTEGER NOT NULL
);

-- Usage per tenant and category, kept exact in the transactions that change files.
CREATE TABLE tenant_usage (
    tenant_id TEXT NOT NULL,
    category  TEXT NOT NULL,
    files     INTEGER NOT NULL DEFAULT 0 CHECK (files >= 0),
    bytes     INTEGER NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    PRIMARY KEY (tenant_id, category)
);

CREATE UNIQUE INDEX files_blob ON files (bucket, blob_key);
CREATE INDEX pending_uploads_age ON pending_uploads (started_at);
