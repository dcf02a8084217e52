-- Paged lists (issue 12): JobList and CellList seek by a (time, id) cursor,
-- newest jobs first, so each page is one range scan of an index whatever
-- its depth. A status filter has its own index: `running` among 100 000
-- exited jobs must not scan them all. The two-column indexes they replace
-- could not order ties by id.
CREATE INDEX jobs_by_start ON jobs (started_at_ms, id);
CREATE INDEX jobs_by_cell_start ON jobs (cell_id, started_at_ms, id);
CREATE INDEX jobs_by_status_start ON jobs (status, started_at_ms, id);
DROP INDEX jobs_by_cell;
DROP INDEX jobs_by_status;
CREATE INDEX cells_by_created ON cells (created_at_ms, id);
