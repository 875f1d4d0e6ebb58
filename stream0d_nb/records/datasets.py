"""Records of datasets: a dataset as listed and shown, what is stored, its channels, and
the summary overview screens show (last values, ages, good shares, last commit)."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, Field

from stream0d_nb.access import Role
from stream0d_nb.records.base import Record
from stream0d_nb.specs import ChannelSpec, DatasetSpec, FormulaSpec


class DatasetInfo(DatasetSpec):
    """A dataset as the API lists it: its spec, bookkeeping and the caller's role.

    Read from a registry record seen with its spec and the role
    (``AttrView(record.spec, record, role=...)``); the storage location is not shown.
    """

    model_config = ConfigDict(from_attributes=True, frozen=True, extra="ignore")

    created_at: datetime
    created_by: str
    updated_at: datetime
    role: Role | None = Field(description="The caller's role on it (None: seen as an admin).")


class StoredExtent(Record):
    """What a dataset stores: its extent, channels and number of commits."""

    snapshot: str = Field(description="The current snapshot (commit) id.")
    start: datetime | None = Field(description="Time of the first stored sample.")
    end: datetime | None = Field(description="Time of the last stored sample.")
    samples: int = Field(description="Grid points from start to end.")
    chunk: str = Field(description="Time span of one chunk, e.g. '1D'.")
    channels: list[ChannelSpec]
    commits: int


class DatasetDetail(DatasetInfo):
    """One dataset (``GET /datasets/{id}``): as listed, plus what is stored."""

    summary: StoredExtent


class DatasetDeleted(Record):
    """The answer to deleting a dataset."""

    deleted: str = Field(description="The dataset's id.")
    objects: int = Field(description="Storage objects removed.")


class ChannelList(Record):
    """A dataset's channels: stored ones (as of a snapshot) and derived ones (formulas)."""

    stored: list[ChannelSpec]
    derived: list[FormulaSpec]


class ChannelsSaved(Record):
    """The answer to saving channels: the commit (None: nothing changed), every channel."""

    commit: str | None
    stored: list[ChannelSpec]


class ChannelDeleted(Record):
    """The answer to deleting a channel: its name and the commit that removed it."""

    deleted: str
    commit: str | None


# ----------------------------------------------------------------------------- summaries


class ChannelSummary(Record):
    """One stored channel in a summary: last value, its age, good share over the window."""

    name: str
    units: str = ""
    last_value: float | None = Field(None, description="Last non-NaN sample (None: none).")
    last_time: datetime | None = None
    age_seconds: float | None = Field(None, description="now - last_time, in seconds.")
    good: int = Field(0, description="Non-NaN samples in the window.")
    good_share: float = Field(0.0, description="good / samples (0 to 1).")


class CommitSummary(Record):
    """The dataset's last commit."""

    id: str
    written_at: datetime
    actor: str | None = None
    message: str = ""


class DatasetSummary(Record):
    """What an overview shows of a dataset, read from its last chunks only."""

    dataset: str
    snapshot: str
    interval: str
    now: datetime = Field(..., description="The time ages are counted against.")
    window: str
    window_start: datetime = Field(..., description="Window is [window_start, window_end).")
    window_end: datetime
    samples: int = Field(..., description="Grid points in the window (good_share's divisor).")
    end: datetime | None = Field(None, description="Time of the last stored sample (extent).")
    channels: list[ChannelSummary]
    last_commit: CommitSummary | None = None
