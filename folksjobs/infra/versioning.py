"""Worker Deployment versioning: each release is a version of one deployment.

Off unless WORKER_DEPLOYMENT_NAME is set. Then the worker registers as version
`<WORKER_DEPLOYMENT_NAME>.<WORKER_BUILD_ID>` (the build id defaults to the package version)
and Temporal routes by it: a run of a PINNED workflow (ProcessCsv: an import can outlive a
release, across continue-as-new) stays on the version that started it, so its code never
changes under it; every other workflow is AUTO_UPGRADE and moves to the current version at
its next task, which the replay corpus keeps safe. The pinned forms are in
workflows/pinned.py (worker.py registers them instead); the rollout is in docs/deploys.md.
"""

from __future__ import annotations

from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import WorkerDeploymentConfig

from folksjobs.settings import Settings


def deployment_version(settings: Settings) -> WorkerDeploymentVersion | None:
    if not settings.worker_deployment_name:
        return None
    return WorkerDeploymentVersion(
        deployment_name=settings.worker_deployment_name, build_id=settings.worker_build_id
    )


def deployment_config(settings: Settings) -> WorkerDeploymentConfig | None:
    """The worker's versioning options, or None: an unversioned worker (the default)."""
    version = deployment_version(settings)
    if version is None:
        return None
    return WorkerDeploymentConfig(
        version=version,
        use_worker_versioning=True,
        # Workflows without a pinned form (workflows/pinned.py): all but ProcessCsv.
        default_versioning_behavior=VersioningBehavior.AUTO_UPGRADE,
    )
