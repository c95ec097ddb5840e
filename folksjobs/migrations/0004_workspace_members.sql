-- Who belongs to a workspace besides its owner (the owner always does). A job's user_id
-- must be one of them before anything is written or sent for it
-- (folksjobs/notify/directory.py require_member): no report or export link ever goes to
-- a user of another workspace.
CREATE TABLE IF NOT EXISTS workspace_members (
    workspace_id  uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, user_id)
);
