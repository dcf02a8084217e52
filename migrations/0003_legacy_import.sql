-- Imports of the earlier prototype's JSON state (at daemon start, and by
-- `planterd import-legacy`): one row per import that found something.
CREATE TABLE legacy_imports (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  source TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  report_json TEXT NOT NULL
);

-- Every prototype record file an import dealt with, by source dir and path
-- relative to it (cells/<id>/cell.json, jobs/<id>.json), so that no later
-- import of that source reads it again. A skipped file keeps its size and
-- change time (fingerprint): once changed, it is considered again.
CREATE TABLE legacy_import_files (
  source TEXT NOT NULL,
  path TEXT NOT NULL,
  import_id INTEGER NOT NULL,
  record_id TEXT,
  outcome TEXT NOT NULL,
  reason TEXT,
  fingerprint TEXT,
  PRIMARY KEY (source, path)
);
