-- Resumable (tus) uploads in progress, and finished ones until they expire (so that a client
-- asking again learns that its upload completed). The state lives here, not in a server's
-- memory, so any instance continues any upload. `blob_key` is the version the finished file
-- will have (`tenant-{id}/{category}/{version}/{filename}`); a pending intent for it is recorded
-- in the same transaction as the row, so reconcile's rules for interrupted writes hold.
CREATE TABLE resumable_uploads (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    bucket TEXT NOT NULL,
    blob_key TEXT NOT NULL,
    original_filename TEXT NOT NULL,
    declared_type TEXT,
    content_type TEXT,
    overwrite INTEGER NOT NULL,
    length INTEGER,
    upload_offset INTEGER NOT NULL,
    -- SHA-256 state after `upload_offset` bytes (hex midstate, byte count, unhashed tail), or
    -- the final hex digest once completed.
    hasher TEXT NOT NULL,
    -- The first bytes, kept only until there are enough to decide the type.
    head BLOB NOT NULL,
    -- The blob store's own state of the partial object (opaque to the catalog).
    engine_state TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    completed_at INTEGER,
    lock_token TEXT,
    locked_until INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX resumable_uploads_tenant ON resumable_uploads (tenant_id);
CREATE INDEX resumable_uploads_expiry ON resumable_uploads (expires_at);
