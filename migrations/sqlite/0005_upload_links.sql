-- Upload links (presigned PUT) that have been used: each accepts one upload. Rows outlive
-- their link's expiry only until the tenant's next link is used.
CREATE TABLE used_upload_links (
    link TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX used_upload_links_expiry ON used_upload_links (tenant_id, expires_at);
