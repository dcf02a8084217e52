-- Socket authorization: cells and jobs record the uid that created them
-- (NULL for rows made before, which belong to the daemon's user), and each
-- journal row records the caller's uid and pid (NULL for what the daemon
-- did on its own). Independent of any other migration.
ALTER TABLE cells ADD COLUMN owner_uid INTEGER;
ALTER TABLE jobs ADD COLUMN owner_uid INTEGER;
ALTER TABLE events ADD COLUMN uid INTEGER;
ALTER TABLE events ADD COLUMN pid INTEGER;
CREATE INDEX events_by_time ON events (at_ms);
