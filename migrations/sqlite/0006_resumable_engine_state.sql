-- A partial object's engine state in a row of its own. On S3 it lists the parts so far; on the
-- sealed filesystem store it was the sealed tail of the upload (up to 64 KiB, about 87 KB as
-- base64; now it names a slot of `.tus-tail`). SQLite rewrites a whole record
-- on every UPDATE and reads through it to reach a later column, so while the state sat in
-- `resumable_uploads` every lock, lease renewal and quota check of an upload wrote or read it
-- again. Now those touch the small row only; the state is written when an append changes it.
CREATE TABLE resumable_upload_states (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    engine_state TEXT NOT NULL
);
INSERT INTO resumable_upload_states (id, tenant_id, engine_state)
    SELECT id, tenant_id, engine_state FROM resumable_uploads;
ALTER TABLE resumable_uploads DROP COLUMN engine_state;
