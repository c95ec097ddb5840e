-- Rows whose contact was already stored exactly as the row would leave it (issue 30:
-- importing a workspace's own export into it is 0 changes). The spec counts such a row as
-- updated; folksjobs counts it apart and does not write it. Runs recorded before this
-- counted them as updated, and keep their 0 here.
ALTER TABLE import_batches ADD COLUMN IF NOT EXISTS unchanged integer NOT NULL DEFAULT 0;
ALTER TABLE imports ADD COLUMN IF NOT EXISTS unchanged_rows integer NOT NULL DEFAULT 0;
