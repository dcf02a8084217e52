-- Cells, jobs and the append-only events journal.
-- JSON columns hold values whose shape is owned by the Schemas in src/rpc/Models.ts.
CREATE TABLE cells (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  env_json TEXT NOT NULL,
  read_paths_json TEXT NOT NULL,
  network TEXT NOT NULL,
  dir TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL
);

CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  cell_id TEXT NOT NULL,
  command_json TEXT NOT NULL,
  status TEXT NOT NULL,
  exit_code INTEGER,
  signal TEXT,
  termination_reason TEXT,
  pid INTEGER,
  pid_start_time TEXT,
  started_at_ms INTEGER NOT NULL,
  finished_at_ms INTEGER,
  sandbox_json TEXT NOT NULL
);

CREATE INDEX jobs_by_cell ON jobs (cell_id, started_at_ms);
CREATE INDEX jobs_by_status ON jobs (status);

CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at_ms INTEGER NOT NULL,
  kind TEXT NOT NULL,
  cell_id TEXT,
  job_id TEXT,
  detail_json TEXT NOT NULL
);
