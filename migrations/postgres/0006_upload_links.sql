-- Upload links (presigned PUT) that have been used: each accepts one upload. Rows outlive
-- their link's expiry only until the tenant's next link is used.
CREATE TABLE used_upload_links (
    link TEXT COLLATE "C" PRIMARY KEY,
    tenant_id TEXT COLLATE "C" NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX used_upload_links_expiry ON used_upload_links (tenant_id, expires_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON used_upload_links TO coffer_app;
GRANT SELECT, DELETE ON used_upload_links TO coffer_maintenance;
ALTER TABLE used_upload_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE used_upload_links FORCE ROW LEVEL SECURITY;
CREATE POLICY used_upload_links_tenant ON used_upload_links
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY used_upload_links_maintenance ON used_upload_links TO coffer_maintenance USING (true) WITH CHECK (true);
