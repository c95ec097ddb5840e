-- folksjobs schema: the tables the four jobs read and write.
-- Tenant tables carry workspace_id and are guarded by row-level security: the
-- application connects through the folksjobs_app role (not the owner), and every
-- transaction names its workspace with set_config('app.workspace_id', ..., true).

CREATE TABLE users (
    id          uuid PRIMARY KEY,
    email       text NOT NULL,
    name        text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workspaces (
    id              uuid PRIMARY KEY,
    name            text NOT NULL,
    owner_user_id   uuid NOT NULL REFERENCES users(id),
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workspace_settings (
    workspace_id                uuid PRIMARY KEY REFERENCES workspaces(id) ON DELETE CASCADE,
    notify_on_export_complete   boolean NOT NULL DEFAULT true,
    notify_weekly_digest        boolean NOT NULL DEFAULT true,
    notify_on_import_complete   boolean NOT NULL DEFAULT true
);

CREATE TABLE contacts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    email           text NOT NULL,
    first_name      text,
    last_name       text,
    company         text,
    phone           text,
    avatar_url      text,
    custom_fields   jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace_id, email)
);
CREATE INDEX contacts_workspace_id_idx ON contacts (workspace_id, id);
CREATE INDEX contacts_workspace_created_idx ON contacts (workspace_id, created_at);

CREATE TABLE tags (
    id              uuid PRIMARY KEY,
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name            text NOT NULL,
    UNIQUE (workspace_id, name)
);

CREATE TABLE contact_tags (
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    contact_id      bigint NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    tag_id          uuid NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    PRIMARY KEY (contact_id, tag_id)
);
CREATE INDEX contact_tags_tag_idx ON contact_tags (tag_id, contact_id);

CREATE TABLE imports (
    id              uuid PRIMARY KEY,
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users(id),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    file_name       text NOT NULL,
    blob_key        text NOT NULL,
    file_bytes      bigint NOT NULL DEFAULT 0,
    encoding        text NOT NULL DEFAULT 'utf-8',
    delimiter       text NOT NULL DEFAULT ',',
    sep_line        boolean NOT NULL DEFAULT false,
    headers         jsonb NOT NULL DEFAULT '[]'::jsonb,
    column_mapping  jsonb NOT NULL DEFAULT '{}'::jsonb,
    total_rows      integer NOT NULL DEFAULT 0,
    processed_rows  integer NOT NULL DEFAULT 0,
    inserted_rows   integer NOT NULL DEFAULT 0,
    updated_rows    integer NOT NULL DEFAULT 0,
    failed_rows     integer NOT NULL DEFAULT 0,
    duplicate_rows  integer NOT NULL DEFAULT 0,
    error_samples   jsonb NOT NULL DEFAULT '[]'::jsonb,
    warnings        jsonb NOT NULL DEFAULT '[]'::jsonb,
    error_log       jsonb,
    ai_summary      text,
    workflow_id     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    completed_at    timestamptz,
    duration_ms     bigint
);
CREATE INDEX imports_workspace_idx ON imports (workspace_id, created_at);

-- The ledger that makes chunk processing exactly-once: one row per processed
-- sub-batch, written in the same transaction as that sub-batch's upserts.
CREATE TABLE import_batches (
    import_id       uuid NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
    chunk_index     integer NOT NULL,
    batch_index     integer NOT NULL,
    workspace_id    uuid NOT NULL,
    chunk_rows      integer NOT NULL,
    rows            integer NOT NULL,
    inserted        integer NOT NULL,
    updated         integer NOT NULL,
    failed          integer NOT NULL,
    duplicates      integer NOT NULL,
    error_samples   jsonb NOT NULL DEFAULT '[]'::jsonb,
    committed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (import_id, chunk_index, batch_index)
);

CREATE TABLE exports (
    id              uuid PRIMARY KEY,
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users(id),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    tag_names       text[] NOT NULL DEFAULT '{}',
    blob_key        text,
    row_count       integer NOT NULL DEFAULT 0,
    file_bytes      bigint NOT NULL DEFAULT 0,
    error_log       jsonb,
    workflow_id     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    completed_at    timestamptz,
    duration_ms     bigint
);

-- At most one digest per workspace and week, claimed before the send.
CREATE TABLE digest_sends (
    workspace_id    uuid NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    week_start      date NOT NULL,
    status          text NOT NULL DEFAULT 'claimed',
    claimed_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    PRIMARY KEY (workspace_id, week_start)
);

-- Row-level security: a second wall behind the workspace_id in every query.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'folksjobs_app') THEN
        CREATE ROLE folksjobs_app NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO folksjobs_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO folksjobs_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO folksjobs_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO folksjobs_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO folksjobs_app;

CREATE FUNCTION app_workspace_id() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('app.workspace_id', true), '')::uuid $$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['workspace_settings', 'contacts', 'tags', 'contact_tags',
                             'imports', 'import_batches', 'exports', 'digest_sends']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I TO folksjobs_app '
            'USING (workspace_id = app_workspace_id()) '
            'WITH CHECK (workspace_id = app_workspace_id())', t);
    END LOOP;
END
$$;
