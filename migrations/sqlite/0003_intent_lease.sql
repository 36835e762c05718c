-- The time until which an upload's writer vouches that it is alive (microseconds since the
-- epoch). Reconcile leaves an intent alone until both this and its last mark are older than
-- the grace period, whatever grace the command is given. 0 for intents of older versions.
ALTER TABLE pending_uploads ADD COLUMN alive_until INTEGER NOT NULL DEFAULT 0;
