-- Resumable (tus) uploads in progress, and finished ones until they expire (so that a client
-- asking again learns that its upload completed). The state lives here, not in a server's
-- memory, so any instance continues any upload. `blob_key` is the version the finished file
-- will have (`tenant-{id}/{category}/{version}/{filename}`); a pending intent for it is recorded
-- in the same transaction as the row, so reconcile's rules for interrupted writes hold.
CREATE TABLE resumable_uploads (
    id TEXT COLLATE "C" PRIMARY KEY,
    tenant_id TEXT COLLATE "C" NOT NULL,
    bucket TEXT COLLATE "C" NOT NULL,
    blob_key TEXT COLLATE "C" NOT NULL,
    original_filename TEXT NOT NULL,
    declared_type TEXT,
    content_type TEXT,
    overwrite BOOLEAN NOT NULL,
    length BIGINT,
    upload_offset BIGINT NOT NULL,
    -- SHA-256 state after `upload_offset` bytes (hex midstate, byte count, unhashed tail), or
    -- the final hex digest once completed.
    hasher TEXT NOT NULL,
    -- The first bytes, kept only until there are enough to decide the type.
    head BYTEA NOT NULL,
    -- The blob store's own state of the partial object (opaque to the catalog).
    engine_state TEXT NOT NULL,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    completed_at BIGINT,
    lock_token TEXT,
    locked_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX resumable_uploads_tenant ON resumable_uploads (tenant_id);
CREATE INDEX resumable_uploads_expiry ON resumable_uploads (expires_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON resumable_uploads TO coffer_app;
GRANT SELECT, DELETE ON resumable_uploads TO coffer_maintenance;
ALTER TABLE resumable_uploads ENABLE ROW LEVEL SECURITY;
ALTER TABLE resumable_uploads FORCE ROW LEVEL SECURITY;
CREATE POLICY resumable_uploads_tenant ON resumable_uploads
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY resumable_uploads_maintenance ON resumable_uploads TO coffer_maintenance USING (true) WITH CHECK (true);
