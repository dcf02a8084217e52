-- Job names and labels (issue 13): `planter run --name NAME --label K=V`.
-- A name is unique among the running jobs of a cell: the partial unique
-- index refuses a second `starting`/`running` job of that name in the cell,
-- atomically, while finished jobs keep their names (a JOB argument that
-- names finished jobs means the most recent of them).
ALTER TABLE jobs ADD COLUMN name TEXT;
ALTER TABLE jobs ADD COLUMN labels_json TEXT;
CREATE INDEX jobs_by_name ON jobs (name, started_at_ms);
CREATE UNIQUE INDEX jobs_running_name ON jobs (cell_id, name) WHERE name IS NOT NULL AND status IN ('starting', 'running');
