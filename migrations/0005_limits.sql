-- Resource limits (issue 10): a cell's default limits (JSON, the shape of
-- ResourceLimits; NULL for none), and what the monitor saw of a job by its
-- end: its peak RSS, CPU time and, for a limit kill, the limit and the
-- observed value. A job's own limits live in command_json.
ALTER TABLE cells ADD COLUMN limits_json TEXT;
ALTER TABLE jobs ADD COLUMN peak_rss_bytes INTEGER;
ALTER TABLE jobs ADD COLUMN cpu_ms INTEGER;
ALTER TABLE jobs ADD COLUMN limit_detail_json TEXT;
