-- A partial object's engine state in a row of its own, as in SQLite's migration 0006 (the
-- statements are shared). On S3 it lists the parts so far; on the sealed filesystem store it was
-- the sealed tail (up to 64 KiB as base64; now the name of a slot of `.tus-tail`). Locks, lease
-- renewals and quota checks no longer touch it.
CREATE TABLE resumable_upload_states (
    id TEXT COLLATE "C" PRIMARY KEY,
    tenant_id TEXT COLLATE "C" NOT NULL,
    engine_state TEXT NOT NULL
);

-- The owner running this migration sees every tenant's rows only without FORCE.
ALTER TABLE resumable_uploads NO FORCE ROW LEVEL SECURITY;
INSERT INTO resumable_upload_states (id, tenant_id, engine_state)
    SELECT id, tenant_id, engine_state FROM resumable_uploads;
ALTER TABLE resumable_uploads FORCE ROW LEVEL SECURITY;
ALTER TABLE resumable_uploads DROP COLUMN engine_state;

GRANT SELECT, INSERT, UPDATE, DELETE ON resumable_upload_states TO coffer_app;
GRANT SELECT, DELETE ON resumable_upload_states TO coffer_maintenance;
ALTER TABLE resumable_upload_states ENABLE ROW LEVEL SECURITY;
ALTER TABLE resumable_upload_states FORCE ROW LEVEL SECURITY;
CREATE POLICY resumable_upload_states_tenant ON resumable_upload_states
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY resumable_upload_states_maintenance ON resumable_upload_states TO coffer_maintenance
    USING (true) WITH CHECK (true);
