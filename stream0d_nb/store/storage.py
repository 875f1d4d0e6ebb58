"""Where a dataset's Icechunk repository lives: a local folder or an Azure Blob prefix.

A storage root is a path (default ``<home>/datasets``) or ``az://container/prefix``;
each dataset gets ``<root>/<dataset id>``. Local repositories are guarded by a file lock
per dataset because Icechunk's local storage is not safe for concurrent commits
(DESIGN §4); on Azure, concurrent writers are handled by conflict detection and retry.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import icechunk as ic
from filelock import FileLock

from stream0d_nb.errors import StorageConfigError
from stream0d_nb.settings import Settings

# Icechunk warns on every local commit that concurrent commits are unsafe; we serialise
# local writers with a file lock, so keep its log to errors.
ic.set_logs_filter("error")


@dataclass(frozen=True)
class StorageLocation:
    """A dataset repository's address: ``kind`` is ``local`` or ``azure``."""

    kind: str
    path: str
    """Local folder, or blob prefix inside ``container``."""
    container: str = ""

    @property
    def uri(self) -> str:
        """The address as stored in the registry."""
        return self.path if self.kind == "local" else f"az://{self.container}/{self.path}"


def parse_root(url: str) -> StorageLocation:
    """Parse a storage root (path or ``az://container/prefix``)."""
    if url.startswith(("az://", "abfs://", "azure://")):
        u = urlparse(url)
        if not u.netloc:
            raise StorageConfigError(
                f"storage URL {url!r} has no container (az://container/prefix)"
            )
        return StorageLocation("azure", u.path.strip("/"), u.netloc)
    if "://" in url and not url.startswith("file://"):
        raise StorageConfigError(
            f"unsupported storage URL {url!r}: use a path or az://container/prefix"
        )
    return StorageLocation("local", str(Path(url.removeprefix("file://")).resolve()))


def dataset_location(root: StorageLocation, dataset_id: str) -> StorageLocation:
    """The location of one dataset under a storage root."""
    if root.kind == "local":
        return StorageLocation("local", str(Path(root.path) / dataset_id))
    return StorageLocation("azure", f"{root.path}/{dataset_id}".strip("/"), root.container)


def _azure_kwargs(settings: Settings) -> dict[str, object]:
    if not settings.azure_account:
        raise StorageConfigError("Azure storage needs STREAM0D_AZURE_ACCOUNT")
    if not (settings.azure_key or settings.azure_sas_token):
        raise StorageConfigError(
            "Azure storage needs STREAM0D_AZURE_KEY or STREAM0D_AZURE_SAS_TOKEN"
        )
    config: dict[str, str] = {}
    if settings.azure_endpoint:
        config["endpoint"] = settings.azure_endpoint
        if settings.azure_endpoint.startswith("http://"):
            config["allow_http"] = "true"
    kwargs: dict[str, object] = {"account": settings.azure_account, "config": config or None}
    if settings.azure_key:
        kwargs["access_key"] = settings.azure_key
    else:
        kwargs["sas_token"] = settings.azure_sas_token
    return kwargs


def icechunk_storage(loc: StorageLocation, settings: Settings) -> ic.Storage:
    """The Icechunk storage object for a dataset location."""
    if loc.kind == "local":
        return ic.local_filesystem_storage(loc.path)
    return ic.azure_storage(container=loc.container, prefix=loc.path, **_azure_kwargs(settings))  # type: ignore[arg-type]


def writer_lock(loc: StorageLocation, settings: Settings) -> FileLock | None:
    """A per-dataset inter-process lock for local repositories (None on Azure)."""
    if loc.kind != "local":
        return None
    lock_dir = Path(loc.path).parent / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(lock_dir / f"{Path(loc.path).name}.lock"))


def _container_client(loc: StorageLocation, settings: Settings):  # type: ignore[no-untyped-def]
    from azure.storage.blob import BlobServiceClient

    kw = _azure_kwargs(settings)
    url = settings.azure_endpoint or f"https://{kw['account']}.blob.core.windows.net"
    credential: dict[str, str] | str | None
    if settings.azure_key and settings.azure_account:
        credential = {"account_name": settings.azure_account, "account_key": settings.azure_key}
    else:
        credential = settings.azure_sas_token
    return BlobServiceClient(account_url=url, credential=credential).get_container_client(
        loc.container
    )


def location_bytes(loc: StorageLocation, settings: Settings) -> int:
    """Bytes stored by a dataset repository (every object: chunks, manifests, snapshots)."""
    if loc.kind == "local":
        path = Path(loc.path)
        return sum(
            (Path(root) / f).stat().st_size for root, _, files in os.walk(path) for f in files
        )
    cc = _container_client(loc, settings)
    return sum(int(b.size or 0) for b in cc.list_blobs(name_starts_with=loc.path.rstrip("/") + "/"))


def delete_location(loc: StorageLocation, settings: Settings) -> int:
    """Remove every object of a dataset repository; returns how many were removed."""
    if loc.kind == "local":
        path = Path(loc.path)
        if not path.exists():
            return 0
        n = sum(len(files) for _, _, files in os.walk(path))
        shutil.rmtree(path)
        return n
    cc = _container_client(loc, settings)
    names = [b.name for b in cc.list_blobs(name_starts_with=loc.path.rstrip("/") + "/")]
    for i in range(0, len(names), 256):
        cc.delete_blobs(*names[i : i + 256])
    return len(names)
