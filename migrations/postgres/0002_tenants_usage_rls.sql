-- Tenants: registered tenants and their status (COFFER_TENANTS=registered refuses others).
CREATE TABLE tenants (
    tenant_id  TEXT COLLATE "C" PRIMARY KEY,
    status     TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at BIGINT NOT NULL
);

-- Usage per tenant and category, kept exact in the transactions that change files.
CREATE TABLE tenant_usage (
    tenant_id TEXT COLLATE "C" NOT NULL,
    category  TEXT COLLATE "C" NOT NULL,
    files     BIGINT NOT NULL DEFAULT 0 CHECK (files >= 0),
    bytes     BIGINT NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    PRIMARY KEY (tenant_id, category)
);

-- Defence in depth: row-level security keyed on a per-transaction setting. coffer runs every
-- tenant query as role coffer_app inside a transaction that did
-- `SELECT set_config('app.tenant_id', $tenant, true)`; without it no row is visible.
-- Maintenance (reconcile, the deletion queue) sets app.all_tenants = 'on' explicitly.
DO $$
BEGIN
    CREATE ROLE coffer_app NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO coffer_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON files, pending_uploads, blob_deletions, tenants, tenant_usage TO coffer_app;

ALTER TABLE files ENABLE ROW LEVEL SECURITY;
ALTER TABLE files FORCE ROW LEVEL SECURITY;
CREATE POLICY files_tenant ON files
    USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');

ALTER TABLE tenant_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_usage FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_usage_tenant ON tenant_usage
    USING (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on')
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true) OR current_setting('app.all_tenants', true) = 'on');
