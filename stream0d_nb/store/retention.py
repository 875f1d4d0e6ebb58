"""Retention: a dataset's history kept bounded with Icechunk's own snapshot expiry and
garbage collection.

Every commit younger than ``keep_all`` is kept. Older ones are expired
(``Repository.expire_snapshots``), except the last commit of each UTC day, which a tag
``daily-YYYY-MM-DD`` keeps for ``keep_daily`` (None: for ever; Icechunk never expires a
tag's snapshot). Then ``Repository.garbage_collect`` deletes the chunks, manifests and
snapshots no kept snapshot refers to, if they are older than ``gc_margin`` (a write in
progress has written chunks no commit refers to yet: the margin keeps them).

``apply_retention(..., dry_run=True)`` (``stream0d retain DATASET --dry-run``) says which
days it would tag, which tags it would drop and which commits it would expire, changing
nothing; the objects those commits alone refer to are what garbage collection would then
delete.

Time travel after retention: ``as_of`` a time within ``keep_all`` finds the commit it
always did; an older time finds the newest kept commit at or before it, the last commit
of an earlier day, as long as ``keep_daily`` keeps that day (``DatasetData.snapshot``
looks at the daily tags too); a snapshot id works while its commit is kept.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from stream0d_nb.store.repo import BRANCH, DAILY_TAG, DatasetData

if TYPE_CHECKING:
    from stream0d_nb.store.store import Store

__all__ = ["RetentionPolicy", "RetentionResult", "RetentionSchedule", "apply_retention"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionPolicy:
    """Which commits a dataset keeps, and how old unreferenced objects must be to go."""

    keep_all: timedelta = timedelta(days=7)
    """Every commit younger than this is kept (time travel to any of them)."""
    keep_daily: timedelta | None = timedelta(days=365)
    """Beyond ``keep_all``, the last commit of each UTC day is kept this long (None: always)."""
    gc_margin: timedelta = timedelta(hours=1)
    """Objects younger than this are never deleted (protects writes in progress)."""


@dataclass
class RetentionResult:
    """What one retention run did on one dataset."""

    dataset: str
    tagged: list[str] = field(default_factory=list)
    untagged: list[str] = field(default_factory=list)
    expired: int = 0
    deleted_objects: int = 0
    deleted_bytes: int = 0
    dry_run: bool = False
    """Nothing was changed: the lists and ``expired`` say what would be."""
    kept: int = 0
    """Commits of the history that stay (the tagged days' included)."""


def apply_retention(
    data: DatasetData,
    policy: RetentionPolicy | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
) -> RetentionResult:
    """Tag each old day's last commit, expire the other old commits, collect garbage
    (``dry_run``: only say what would be tagged, untagged and expired)."""
    policy = policy or RetentionPolicy()
    now = now or datetime.now(UTC)
    repo = data.repo
    result = RetentionResult(data.dataset_id, dry_run=dry_run)
    cutoff = now - policy.keep_all
    last_of_day: dict[str, tuple[datetime, str]] = {}
    history = [info for info in repo.ancestry(branch=BRANCH) if info.parent_id is not None]
    for info in history:  # Icechunk's own first snapshot is never expired anyway
        day = info.written_at.astimezone(UTC).date().isoformat()
        if day not in last_of_day or info.written_at > last_of_day[day][0]:
            last_of_day[day] = (info.written_at, info.id)
    names = [t for t in repo.list_tags() if t.startswith(DAILY_TAG)]
    tags = {t: repo.lookup_tag(t) if dry_run else "" for t in names}  # targets: dry runs only
    oldest_daily = None if policy.keep_daily is None else (now - policy.keep_daily).date()
    for day, (written, snap) in sorted(last_of_day.items()):
        if written >= cutoff:  # the day still has commits kept as they are
            continue
        if oldest_daily is not None and datetime.fromisoformat(day).date() < oldest_daily:
            continue
        name = DAILY_TAG + day
        if name not in tags:
            if not dry_run:
                repo.create_tag(name, snap)
            tags[name] = snap
            result.tagged.append(name)
    if oldest_daily is not None:
        for name in sorted(tags):
            if datetime.fromisoformat(name.removeprefix(DAILY_TAG)).date() < oldest_daily:
                if not dry_run:
                    repo.delete_tag(name)
                del tags[name]
                result.untagged.append(name)
    if dry_run:  # what expire_snapshots spares: the head, tagged commits, young ones
        head = data.head()
        spared = set(tags.values()) | {head}
        gone = [c for c in history if c.written_at < cutoff and c.id not in spared]
        result.expired = len(gone)
        result.kept = len(history) - len(gone)
        return result
    result.expired = len(repo.expire_snapshots(cutoff))
    gc = repo.garbage_collect(now - policy.gc_margin)
    result.deleted_bytes = int(gc.bytes_deleted)
    result.deleted_objects = int(
        gc.chunks_deleted
        + gc.manifests_deleted
        + gc.snapshots_deleted
        + gc.attributes_deleted
        + gc.transaction_logs_deleted
    )
    result.kept = sum(1 for info in repo.ancestry(branch=BRANCH) if info.parent_id is not None)
    data.forget_snapshots()
    return result


class RetentionSchedule:
    """Applies retention to every dataset at most every ``every`` (a ``Folder``'s
    ``after_pass``); holds the dataset's fold lease meanwhile, so that one process at a
    time runs it and no fold or compaction of that dataset runs alongside."""

    def __init__(
        self, policy: RetentionPolicy | None = None, every: timedelta = timedelta(hours=1)
    ) -> None:
        self.policy = policy or RetentionPolicy()
        self.every = every
        self.owner = f"retention-{id(self):x}"
        self._since = time.monotonic()  # the first run comes ``every`` after starting
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, store: Store) -> list[RetentionResult]:
        """Run retention on the datasets whose last run here is ``every`` old."""
        out = []
        tables = store.appends.tables
        for rec in store.list_datasets():
            ds = rec.spec.id
            with self._lock:
                if time.monotonic() - self._last.get(ds, self._since) < self.every.total_seconds():
                    continue
                self._last[ds] = time.monotonic()
            tables.ensure_state(ds)
            if not tables.take_lease(ds, self.owner, 3600):
                continue
            try:
                out.append(apply_retention(store.data(ds), self.policy))
            except Exception:
                log.exception("retention of %s failed; retrying in %s", ds, self.every)
            finally:
                tables.release_lease(ds, self.owner)
        return out
