"""Where Ray Train keeps its checkpoints: beside the run on a local store, in the bucket on an S3 store.

Ray Train writes checkpoints itself (from every worker's node), so it needs a filesystem, not our ArtifactStore;
for S3 that is a pyarrow S3FileSystem pointed at the same endpoint, bucket and prefix, with the same credentials.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medopt.config import StoreConfig


def ray_storage(store: StoreConfig, run_dir: Path, run_prefix: str) -> tuple[str, Any | None]:
    """(storage_path, storage_filesystem) for ``ray.train.RunConfig``.

    Args:
        store: the run's store config.
        run_dir: the local run folder (used for a local store).
        run_prefix: the run's key prefix in the store (``runs/<run id>``).
    """
    if store.kind != "s3":
        return str(Path(run_dir).resolve() / "ray_results"), None
    import pyarrow.fs

    from medopt.store.s3 import load_credentials

    creds = load_credentials(store)
    filesystem = pyarrow.fs.S3FileSystem(
        access_key=creds.access_key,
        secret_key=creds.secret_key,
        session_token=creds.session_token,
        endpoint_override=store.endpoint,
        scheme="https" if store.secure else "http",
        region=store.region or "us-east-1",
    )
    parts = [store.bucket or "", store.prefix.strip("/"), run_prefix.strip("/"), "ray_results"]
    return "/".join(p for p in parts if p), filesystem
