-- API keys (folksjobs/api/keys.py): one row per key, the key itself never stored, only
-- its SHA-256 (keys are 256 random bits, so a fast hash cannot be brute-forced).
-- kind 'workspace' may call every route of its workspace; 'service' may only send events.
CREATE TABLE api_keys (
    id              uuid PRIMARY KEY,
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name            text NOT NULL DEFAULT '',
    kind            text NOT NULL CHECK (kind IN ('workspace', 'service')),
    key_hash        bytea NOT NULL UNIQUE,
    prefix          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz
);
CREATE INDEX api_keys_workspace_idx ON api_keys (workspace_id, created_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON api_keys TO folksjobs_app;
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys TO folksjobs_app
    USING (workspace_id = app_workspace_id())
    WITH CHECK (workspace_id = app_workspace_id());

-- Authentication happens before the workspace is known: a transaction that names the
-- hash it was presented (app.api_key_hash) may read that one row, and nothing else.
CREATE FUNCTION app_api_key_hash() RETURNS bytea
    LANGUAGE sql STABLE
    AS $$ SELECT decode(nullif(current_setting('app.api_key_hash', true), ''), 'hex') $$;
CREATE POLICY key_lookup ON api_keys FOR SELECT TO folksjobs_app
    USING (key_hash = app_api_key_hash());
