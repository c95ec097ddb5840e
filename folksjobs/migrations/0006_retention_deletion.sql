-- Retention and deletion (issue 28; README "Data retention and deletion").
-- A file past its retention time is deleted from the blob store; its record stays, with
-- the time the file went (file_deleted_at), so a download names why it is gone (410).
ALTER TABLE imports ADD COLUMN IF NOT EXISTS file_deleted_at timestamptz;
ALTER TABLE exports ADD COLUMN IF NOT EXISTS file_deleted_at timestamptz;
-- A workspace being deleted (workspace/deleted) is marked first: no digest, no new jobs,
-- while its rows and files go; the row itself goes last.
ALTER TABLE workspaces ADD COLUMN IF NOT EXISTS deleted_at timestamptz;
-- A deleted user (user/deleted) keeps a row without an address or a name, because the
-- records of the workspaces they worked in still name them; nothing is sent to it.
ALTER TABLE users ADD COLUMN IF NOT EXISTS deleted_at timestamptz;
