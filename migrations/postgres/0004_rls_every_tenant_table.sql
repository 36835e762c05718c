-- Defence in depth, second round: every table that names a tenant has a row-level policy, and
-- maintenance (reconcile, the deletion queue, operator commands) sees all tenants by acting as
-- role coffer_maintenance — no longer behind a setting (app.all_tenants) that any statement
-- could change. A login that is a member of coffer_app only cannot reach other tenants' rows
-- at all (COFFER_MAINTENANCE_DATABASE_URL names a separate login for maintenance).
DO $$
BEGIN
    CREATE ROLE coffer_maintenance NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO coffer_maintenance;
GRANT SELECT ON files, tenant_usage TO coffer_maintenance;
GRANT SELECT, INSERT, UPDATE, DELETE ON pending_uploads, blob_deletions, tenants TO coffer_maintenance;

-- The tenant of an intent or a queued deletion, from its blob key (`tenant-{id}/…`, the
-- format of coffer's ObjectKey; 'tenant-' is 7 characters).
ALTER TABLE pending_uploads
    ADD COLUMN tenant_id TEXT COLLATE "C" GENERATED ALWAYS AS (substr(split_part(blob_key, '/', 1), 8)) STORED;
ALTER TABLE blob_deletions
    ADD COLUMN tenant_id TEXT COLLATE "C" GENERATED ALWAYS AS (substr(split_part(blob_key, '/', 1), 8)) STORED;

DROP POLICY files_tenant ON files;
CREATE POLICY files_tenant ON files
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY files_maintenance ON files FOR SELECT TO coffer_maintenance USING (true);

DROP POLICY tenant_usage_tenant ON tenant_usage;
CREATE POLICY tenant_usage_tenant ON tenant_usage
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY tenant_usage_maintenance ON tenant_usage FOR SELECT TO coffer_maintenance USING (true);

-- A tenant reads its own status and may register itself (open mode) as active; only
-- maintenance changes a status.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenants_read ON tenants FOR SELECT
    USING (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY tenants_register ON tenants FOR INSERT
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true) AND status = 'active');
CREATE POLICY tenants_maintenance ON tenants TO coffer_maintenance USING (true) WITH CHECK (true);

ALTER TABLE pending_uploads ENABLE ROW LEVEL SECURITY;
ALTER TABLE pending_uploads FORCE ROW LEVEL SECURITY;
CREATE POLICY pending_uploads_tenant ON pending_uploads
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY pending_uploads_maintenance ON pending_uploads TO coffer_maintenance USING (true) WITH CHECK (true);

ALTER TABLE blob_deletions ENABLE ROW LEVEL SECURITY;
ALTER TABLE blob_deletions FORCE ROW LEVEL SECURITY;
CREATE POLICY blob_deletions_tenant ON blob_deletions
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY blob_deletions_maintenance ON blob_deletions TO coffer_maintenance USING (true) WITH CHECK (true);

-- Logins that may not change the schema check at start that it is current.
GRANT SELECT ON _sqlx_migrations TO coffer_app, coffer_maintenance;
