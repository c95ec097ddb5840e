"""The one Settings object: every address, switch and number of the system.

Values come from environment variables (upper-case field names) and a `.env` file.
Numbers default to the spec's values; `docs/configuration.md` in the README lists them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from folksjobs import BUILD_ID

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # --- Temporal -------------------------------------------------------------------
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "folksjobs"
    temporal_ui_url: str = "http://localhost:8233"
    temporal_tls: bool = False
    temporal_api_key: SecretStr | None = None

    # --- Storage & services ---------------------------------------------------------
    # Unset => the dev stack starts an embedded PostgreSQL / Valkey.
    database_url: str | None = None
    redis_url: str | None = None
    # A local directory (path or file:// URL) or s3://bucket/prefix.
    blob_url: str = str(ROOT / "var" / "blobs")
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_presign_seconds: int = 3600
    # Where the dev stack keeps its state (Postgres data, Temporal db, Valkey dump).
    state_dir: Path = ROOT / "var"
    # The ports of the PostgreSQL and Valkey the dev stack starts when the URLs are unset.
    dev_postgres_port: Annotated[int, Field(ge=1, le=65535)] = 54329
    dev_valkey_port: Annotated[int, Field(ge=1, le=65535)] = 63799

    # --- Email ----------------------------------------------------------------------
    email_backend: str = Field("outbox", pattern="^(outbox|http)$")
    outbox_dir: Path = ROOT / "var" / "outbox"
    email_from: str = "folksjobs <noreply@folksjobs.local>"
    email_api_url: str = "https://api.resend.com"
    email_api_key: SecretStr | None = None
    email_timeout_seconds: float = 10.0
    # Sends in flight at once per worker process (all jobs share the provider).
    email_concurrency: Annotated[int, Field(ge=1)] = 10
    # Requests a second to the provider from all workers together (Resend's default limit
    # is 2): every send takes its turn from one schedule in Redis (folksjobs/notify/pace.py).
    email_rate_per_second: Annotated[float, Field(gt=0)] = 2.0
    # A send whose turn is further away than this gives its worker slot back and is retried
    # by Temporal when its turn comes (a long Retry-After, a queue of sends).
    email_max_wait_seconds: Annotated[float, Field(ge=0)] = 20.0
    # A 5xx, timeout or connection error holds every send of the cluster this long, so an
    # outage is probed a few times a second at most, not by every waiting email at once.
    email_outage_hold_seconds: Annotated[float, Field(ge=0)] = 2.0
    # The longest pause between two tries of one email while the provider is down.
    email_retry_max_seconds: Annotated[float, Field(gt=0)] = 15.0
    # How long each kind of email may wait for a provider that is down or busy before it
    # is given up (spec's retry counts are about the job's own failures, not these).
    email_welcome_window_seconds: Annotated[float, Field(gt=0)] = 24 * 3600
    email_notification_window_seconds: Annotated[float, Field(gt=0)] = 24 * 3600
    # The digest waits until this long before the next digest is due (7 days after its
    # scheduled time); a run started later than that (a backfill) gets the notification
    # window from its first try.
    email_digest_margin_seconds: Annotated[float, Field(ge=0)] = 3600
    # Digests sent through the provider's batch endpoint (Resend POST /emails/batch), this
    # many messages a request; 1 sends each digest alone (and the UI lists digest-<ws id>).
    email_batch_size: Annotated[int, Field(ge=1, le=100)] = 1
    app_url: str = "http://localhost:3000"

    # --- AI summary (spec: Claude Haiku, 10 s timeout, plain fallback) ---------------
    anthropic_api_key: SecretStr | None = None
    anthropic_model: str = "claude-haiku-4-5"
    anthropic_base_url: str | None = None
    ai_timeout_seconds: float = 10.0
    ai_concurrency: int = 4

    # --- Gravatar (spec: HEAD d=404, concurrency 10, 2 s timeout) --------------------
    # Looked up after the import commits, by the EnrichAvatars job on its own task queue
    # (workflows/enrich_avatars.py): an import never waits for Gravatar.
    gravatar_enabled: bool = True
    gravatar_base_url: str = "https://gravatar.com/avatar"
    # Requests in flight at once within one lookup-avatars activity.
    gravatar_concurrency: Annotated[int, Field(ge=1)] = 10
    gravatar_timeout_seconds: float = 2.0
    gravatar_cache_ttl_seconds: int = 7 * 24 * 3600
    # Requests per second to Gravatar from the whole cluster, however many workers: the
    # avatars task queue dispatches at most RATE / BATCH lookup-avatars activities a second
    # (Temporal's server-side max_task_queue_activities_per_second), each asking at most
    # BATCH addresses, paced at RATE within itself.
    gravatar_rate_per_second: Annotated[float, Field(gt=0)] = 100.0
    gravatar_batch: Annotated[int, Field(ge=1, le=1000)] = 20
    # lookup-avatars activities one import keeps in flight (each on its share of the
    # contacts): enough to reach the rate when Gravatar answers in ~120 ms.
    gravatar_lanes: Annotated[int, Field(ge=1, le=64)] = 4
    # After this many failed lookups in a row (Gravatar down), no worker asks for this long.
    gravatar_breaker_failures: Annotated[int, Field(ge=1)] = 10
    gravatar_breaker_seconds: Annotated[float, Field(gt=0)] = 60.0
    # While its import still commits rows, the avatars job looks for new ones this often.
    gravatar_poll_seconds: Annotated[float, Field(gt=0)] = 2.0
    # lookup-avatars activities in one run of the avatars job before it continues as new
    # (~4 history events each: well inside Temporal's limits).
    gravatar_lookups_per_run: Annotated[int, Field(ge=1)] = 1000

    # --- Import (spec 000 / 002) ----------------------------------------------------
    upload_max_bytes: int = 200 * 1024 * 1024
    preview_bytes: int = 64 * 1024
    preview_rows: int = 5
    binary_sniff_bytes: int = 8 * 1024
    csv_field_size_limit: int = 1024 * 1024
    # Wider headers are refused at upload (a hostile header of a million names).
    csv_max_columns: int = 2000
    # Accept addresses at the special-use `.test` domain (development and bench data);
    # every other special-use domain (.localhost, .invalid, .onion ...) stays refused.
    email_test_domains: bool = False
    # The spec's design is 500-row chunks, 50-row sub-batches, one chunk at a time
    # (IMPORT_CHUNK_ROWS=500 IMPORT_SUB_BATCH_ROWS=50 IMPORT_PARALLEL_CHUNKS=1 runs it);
    # the defaults are the faster design measured in bench/results.md.
    import_chunk_rows: int = 10000
    # Each sub-batch commits with its ledger row and moves the import's durable progress:
    # 1,000 rows, so the bar moves at least every 1,000 rows of a chunk (issue 27; 5,000
    # before, see bench/results.md "progress" for what the smaller commits cost).
    import_sub_batch_rows: int = 1000
    import_parallel_chunks: int = 4
    # A file of at most this many rows (and at most one chunk) is parsed and processed in
    # one activity inside the worker (import-small): no chunker process, no Redis, no
    # waiting process-batch. 0 turns it off. Above it, parsing in the worker's event loop
    # would hold its other activities back (folksjobs/imports/chunker.py).
    import_inline_max_rows: Annotated[int, Field(ge=0)] = 5000
    # ...and of at most this many bytes: import-small holds the file in memory and parses it
    # in a thread that shares the GIL with the event loop, so a few thousand rows of huge
    # notes take the chunker path (a child process) instead.
    import_inline_max_bytes: Annotated[int, Field(ge=0)] = 2 * 1024 * 1024
    # download-and-chunk keeps at most IMPORT_PARALLEL_CHUNKS + this many chunks of an
    # import in Redis, waiting for process-batch to commit them (folksjobs/imports/backlog.py).
    import_chunk_lead: Annotated[int, Field(ge=1)] = 4
    chunk_ttl_seconds: int = 3600
    # process-batch waits this long for its chunk without any chunking progress before
    # it declares the chunk lost (and the workflow rebuilds it from the blob).
    chunk_wait_seconds: float = 120.0
    error_samples_max: int = 10
    error_report_threshold: float = 0.05
    # An upload nobody confirmed is discarded (record and file) after this long, by the
    # hourly discard-stale-uploads Schedule.
    pending_upload_ttl_seconds: Annotated[float, Field(gt=0)] = 24 * 3600
    discard_uploads_cron: str = "15 * * * *"
    discard_uploads_schedule_id: str = "discard-stale-uploads"
    # At most this many imports run at once per workspace; the rest wait in order (spec 003).
    imports_per_workspace_limit: Annotated[int, Field(ge=1)] = 5
    # Chunks handled by one workflow run before continue-as-new. It bounds the history, and
    # the worker's RSS was measured to grow with the chunks of a run until it hands over
    # (bench/notes.md, "Memory").
    import_chunks_per_run: Annotated[int, Field(ge=1)] = 200

    # --- Export (one COPY ... TO STDOUT stream; the spec's 1,000-row cursor batches were
    # the worker's CSV writer's pace, see folksjobs/exports/repo.py) ------------------------
    # At most this many exports run at once per workspace; the rest wait in order of
    # their confirmation, as imports do (workflows/gate.py). Each holds a COPY stream on
    # PostgreSQL and an upload: two keep a workspace from taking every worker slot.
    exports_per_workspace_limit: Annotated[int, Field(ge=1)] = 2
    # OWASP CSV injection: prefix cells starting with = + - @ tab CR (folksjobs/exports/csvsafe.py).
    export_neutralise_formulas: bool = True
    # How often stream-export tells its workflow the rows written (the progress query).
    export_progress_seconds: float = 1.0
    s3_multipart_part_bytes: int = 8 * 1024 * 1024

    # --- Retention and deletion (README "Data retention and deletion") ----------------
    # An upload's file is deleted this long after its import ended (completed, failed or
    # cancelled); an export's file this long after it was written. The records stay, and
    # the import's error samples and error log with them. Hours, fractions allowed.
    upload_retention_hours: Annotated[float, Field(gt=0)] = 24.0
    # Never shorter than the download link's lifetime (S3_PRESIGN_SECONDS): a link sent
    # in the export's email must not outlive the file it points at.
    export_retention_hours: Annotated[float, Field(gt=0)] = 72.0
    # The hourly Schedule that deletes the files past their time (job expire-files).
    expire_files_cron: str = "45 * * * *"
    expire_files_schedule_id: str = "expire-files"
    # Rows deleted per transaction by a workspace deletion: each batch is committed and
    # reported (heartbeat), so a killed worker's retry carries on from the next one.
    deletion_batch_rows: Annotated[int, Field(ge=1)] = 5000
    # How long a deletion waits for the workspace's cancelled jobs to close.
    deletion_cancel_wait_seconds: Annotated[float, Field(gt=0)] = 300.0

    # --- Digest ---------------------------------------------------------------------
    digest_cron: str = "0 8 * * 1"
    digest_schedule_id: str = "weekly-digest"
    digest_page_size: Annotated[int, Field(ge=1)] = 500
    digest_concurrency: Annotated[int, Field(ge=1)] = 20
    # A run missed while Temporal was down still starts if it comes back within this
    # window (once: overlap policy SKIP); older weeks need `schedule backfill`.
    digest_catchup_window_seconds: Annotated[int, Field(ge=60)] = 24 * 3600

    # --- Jobs on/off (spec 004: registration gated by flags) ------------------------
    job_import_enabled: bool = True
    job_export_enabled: bool = True
    job_welcome_enabled: bool = True
    job_digest_enabled: bool = True
    job_discard_uploads_enabled: bool = True
    job_expire_files_enabled: bool = True
    # workspace/deleted and user/deleted (delete-workspace, delete-user).
    job_deletion_enabled: bool = True

    # --- HTTP API (folksjobs/api, `python -m starter api`) ----------------------------
    api_bind: str = "127.0.0.1:8080"
    # A request's whole body must arrive within this time, so a client that trickles
    # one byte a second cannot hold an upload slot for ever (408).
    api_read_timeout_seconds: Annotated[float, Field(gt=0)] = 300.0
    # The longest request line or header (431/400), and the largest JSON body (413).
    api_max_header_bytes: Annotated[int, Field(ge=1024)] = 8190
    api_max_json_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024
    # Uploads in flight at once per API key, across API processes (Redis); one more gets 429.
    api_uploads_per_key: Annotated[int, Field(ge=1)] = 4
    # How often the progress stream (/v1/imports/{id}/events) reads the import's state.
    api_progress_seconds: Annotated[float, Field(gt=0)] = 1.0

    # --- Worker ---------------------------------------------------------------------
    worker_max_concurrent_activities: int = 20
    # Temporal's fairness between workspaces on one task queue (folksjobs/infra/fairness.py):
    # each workspace's jobs get this weight, or its entry in FAIRNESS_WEIGHTS (JSON,
    # workspace id -> weight; a paid plan's workspaces, say, 2.0: twice the share of slots
    # when the queue has a backlog).
    fairness_default_weight: Annotated[float, Field(gt=0)] = 1.0
    fairness_weights: dict[str, Annotated[float, Field(gt=0)]] = {}
    # download-and-chunk runs on its own queue with these slots (one CSV parser process
    # each), so chunking is never stuck behind process-batch attempts waiting for it.
    worker_max_concurrent_chunkers: Annotated[int, Field(ge=1)] = 4
    worker_graceful_shutdown_seconds: float = 30.0
    # glibc malloc arenas for the worker process (0: glibc's default, 8 per core). Fewer
    # keep less freed memory resident over a long import (bench/notes.md "The hot path").
    worker_malloc_arenas: Annotated[int, Field(ge=0)] = 2
    # Worker Deployment versioning (docs/deploys.md): set the deployment name to turn it on;
    # every release is one version, named by the build id (default: the version from git,
    # as the image is tagged: folksjobs.BUILD_ID).
    # The Temporal Worker Controller sets TEMPORAL_DEPLOYMENT_NAME and TEMPORAL_WORKER_BUILD_ID
    # on the pods it runs; either name works.
    worker_deployment_name: str | None = Field(
        None, validation_alias=AliasChoices("worker_deployment_name", "temporal_deployment_name")
    )
    worker_build_id: str = Field(
        BUILD_ID, validation_alias=AliasChoices("worker_build_id", "temporal_worker_build_id")
    )
    metrics_bind: str | None = None
    # The worker's probes (folksjobs/infra/health.py): /livez while its event loop answers,
    # /readyz once the server has seen it poll its task queues. Unset: no probe server.
    worker_health_bind: str | None = None
    # OpenTelemetry traces (the otel extra): exported to the standard OTEL_EXPORTER_OTLP_*
    # endpoint, service named by OTEL_SERVICE_NAME (folksjobs/infra/tracing.py).
    tracing_enabled: bool = False
    log_level: str = "INFO"
    # text, or json: one object a line with workflow/run/activity/workspace ids.
    log_format: Literal["text", "json"] = "text"
    # Base64 AES-256 keys "id:key,id:key"; the first encrypts, all decrypt.
    payload_encryption_keys: SecretStr | None = None
    # The codec server lets the Temporal UI / CLI show decrypted payloads to those holding
    # the token. CORS origins: comma-separated; empty => the origin of TEMPORAL_UI_URL.
    codec_server_bind: str = "127.0.0.1:8081"
    codec_server_cors_origins: str = ""
    codec_server_auth_token: SecretStr | None = None

    @model_validator(mode="after")
    def _export_files_outlive_their_links(self) -> Settings:
        if self.export_retention_hours * 3600 < self.s3_presign_seconds:
            raise ValueError(
                f"EXPORT_RETENTION_HOURS={self.export_retention_hours:g} is shorter than the "
                f"download link's lifetime (S3_PRESIGN_SECONDS={self.s3_presign_seconds}): "
                "a link would outlive its file"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]
