-- The export joins one aggregate of a workspace's contact_tags (folksjobs/exports.py):
-- without this index that aggregate scans every workspace's tags.
CREATE INDEX IF NOT EXISTS contact_tags_workspace_idx ON contact_tags (workspace_id, contact_id);
