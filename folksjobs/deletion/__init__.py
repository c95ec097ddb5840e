"""Workspace and user deletion (workspace/deleted, user/deleted): the SQL in `repo`."""
