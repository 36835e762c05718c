-- The request path's hottest statements, each in one round trip. A tenant statement otherwise
-- takes four: BEGIN, set_config('app.tenant_id', ...), the statement, COMMIT. Each function below
-- sets app.tenant_id for its own transaction (is_local: the implicit transaction of the one
-- statement that calls it) and then runs its statements, in order, under the same row-level
-- security policies as any tenant transaction. They are SECURITY INVOKER (the default): they run
-- as the caller, coffer_app, and add no privilege; a caller naming another tenant sees only that
-- tenant's rows, exactly as a transaction that set it would. Call them outside an explicit
-- transaction: inside one, the setting would last until it ends.

-- One file by key.
CREATE FUNCTION coffer_file(p_tenant TEXT, p_key TEXT) RETURNS SETOF files
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant, true);
    RETURN QUERY SELECT * FROM files WHERE key = p_key;
END
$$;

-- A page of a tenant's files, `p_limit` rows. Sort: newest first (`p_by_name` false) or by name.
-- `p_category` narrows to one category. `p_lo`/`p_hi`: the prefix range of names (`p_hi` NULL for
-- no prefix). The cursor is (`p_t`, `p_k`) when newest first and (`p_f`, `p_k`) by name; NULL
-- for the first page. Each shape is a static statement of its own, so its plan is cached and
-- keeps using its index (one `(a OR b)` statement for all would lose the index ranges).
CREATE FUNCTION coffer_list(
    p_tenant TEXT, p_category TEXT, p_by_name BOOLEAN, p_lo TEXT, p_hi TEXT,
    p_t BIGINT, p_f TEXT, p_k TEXT, p_limit BIGINT
) RETURNS SETOF files
LANGUAGE plpgsql AS $$
DECLARE
    -- Past every row: created_at is a timestamp in microseconds; names are never empty.
    t BIGINT := COALESCE(p_t, 9223372036854775807);
    f TEXT COLLATE "C" := COALESCE(p_f, '');
    k TEXT COLLATE "C" := COALESCE(p_k, '');
    lo TEXT COLLATE "C" := COALESCE(p_lo, '');
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant, true);
    IF NOT p_by_name THEN
        IF p_category IS NULL THEN
            RETURN QUERY SELECT * FROM files
                WHERE tenant_id = p_tenant AND (created_at, key) < (t, k)
                  AND filename >= lo AND (p_hi IS NULL OR filename < p_hi)
                ORDER BY created_at DESC, key DESC LIMIT p_limit;
        ELSE
            RETURN QUERY SELECT * FROM files
                WHERE tenant_id = p_tenant AND category = p_category AND (created_at, key) < (t, k)
                  AND filename >= lo AND (p_hi IS NULL OR filename < p_hi)
                ORDER BY created_at DESC, key DESC LIMIT p_limit;
        END IF;
    ELSIF p_hi IS NULL THEN
        IF p_category IS NULL THEN
            RETURN QUERY SELECT * FROM files
                WHERE tenant_id = p_tenant AND (filename, key) > (f, k)
                ORDER BY filename, key LIMIT p_limit;
        ELSE
            RETURN QUERY SELECT * FROM files
                WHERE tenant_id = p_tenant AND category = p_category AND (filename, key) > (f, k)
                ORDER BY filename, key LIMIT p_limit;
        END IF;
    ELSE
        IF p_category IS NULL THEN
            RETURN QUERY SELECT * FROM files
                WHERE tenant_id = p_tenant AND (filename, key) > (f, k)
                  AND filename >= lo AND filename < p_hi
                ORDER BY filename, key LIMIT p_limit;
        ELSE
            RETURN QUERY SELECT * FROM files
                WHERE tenant_id = p_tenant AND category = p_category AND (filename, key) > (f, k)
                  AND filename >= lo AND filename < p_hi
                ORDER BY filename, key LIMIT p_limit;
        END IF;
    END IF;
END
$$;

-- An upload's start: the key's row, and the upload's intent recorded when the key is free or
-- `p_overwrite` is on (as `begin_upload` in a transaction).
CREATE FUNCTION coffer_begin_upload(
    p_tenant TEXT, p_key TEXT, p_bucket TEXT, p_blob_key TEXT, p_started BIGINT, p_alive BIGINT,
    p_overwrite BOOLEAN
) RETURNS SETOF files
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant, true);
    RETURN QUERY
        WITH existing AS (
            SELECT * FROM files WHERE key = p_key
        ), recorded AS (
            INSERT INTO pending_uploads (bucket, blob_key, started_at, alive_until)
            SELECT p_bucket, p_blob_key, p_started, p_alive WHERE p_overwrite OR NOT EXISTS (SELECT 1 FROM existing)
        )
        SELECT * FROM existing;
END
$$;

-- An upload's commit when no quota is to be checked: claims the intent and, when the key is free,
-- inserts the row and counts it in the usage. Returns 'committed'; 'lost' when the intent is gone
-- (nothing changed); 'exists' when the key has a row (nothing changed: the intent is put back as
-- it was, and the caller refuses or overwrites in a transaction of its own).
CREATE FUNCTION coffer_commit_new(
    p_key TEXT, p_tenant TEXT, p_category TEXT, p_filename TEXT, p_original TEXT, p_bucket TEXT,
    p_blob_key TEXT, p_content_type TEXT, p_size BIGINT, p_sha256 TEXT, p_created BIGINT
) RETURNS TEXT
LANGUAGE plpgsql AS $$
DECLARE
    v_started BIGINT;
    v_alive BIGINT;
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant, true);
    DELETE FROM pending_uploads WHERE bucket = p_bucket AND blob_key = p_blob_key
        RETURNING started_at, alive_until INTO v_started, v_alive;
    IF NOT FOUND THEN
        RETURN 'lost';
    END IF;
    INSERT INTO files (key, tenant_id, category, filename, original_filename, bucket, blob_key,
                       content_type, size, sha256, created_at)
        VALUES (p_key, p_tenant, p_category, p_filename, p_original, p_bucket, p_blob_key,
                p_content_type, p_size, p_sha256, p_created)
        ON CONFLICT (key) DO NOTHING;
    IF NOT FOUND THEN
        INSERT INTO pending_uploads (bucket, blob_key, started_at, alive_until)
            VALUES (p_bucket, p_blob_key, v_started, v_alive);
        RETURN 'exists';
    END IF;
    INSERT INTO tenant_usage (tenant_id, category, files, bytes) VALUES (p_tenant, p_category, 1, p_size)
        ON CONFLICT (tenant_id, category)
        DO UPDATE SET files = tenant_usage.files + excluded.files, bytes = tenant_usage.bytes + excluded.bytes;
    RETURN 'committed';
END
$$;

-- A tenant's status ('active', 'suspended'), or no row.
CREATE FUNCTION coffer_tenant_status(p_tenant TEXT) RETURNS SETOF TEXT
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('app.tenant_id', p_tenant, true);
    RETURN QUERY SELECT status FROM tenants WHERE tenant_id = p_tenant;
END
$$;

GRANT EXECUTE ON FUNCTION coffer_file, coffer_list, coffer_begin_upload, coffer_commit_new, coffer_tenant_status
    TO coffer_app;
