-- Crash-safe cell removal: a cell being removed carries the time its removal
-- began, so a daemon killed midway finishes the removal on its next start.
ALTER TABLE cells ADD COLUMN removing_at_ms INTEGER;
