"""Python client of the stream0d API: datasets, channels, reads into xarray/pandas, exports,
ingest, formulas, alerts, history, grants, audit log and one's own tokens, over HTTP with an
API token.

    with Client("https://hub.example/services/stream0d", token) as c:
        ds = c.read("fersa-press", ["temp"], start="2024-05-01", every="1min")
        c.export("fersa-press", "may.parquet", start="2024-05-01", end="2024-06-01")

Tokens are created only in the hub's browser session (never through this client); it can
list and revoke the caller's own.

The token goes in the ``Authorization`` header, never in the URL. API errors become the
platform's exceptions (``stream0d_nb.errors``) carrying the server's message.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import ssl
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import quote

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import xarray as xr
from pydantic import BaseModel

from stream0d_nb.access import AccessDeniedError, InvalidTokenError
from stream0d_nb.errors import (
    DatasetExistsError,
    DatasetNotFoundError,
    Fix,
    IngestError,
    Location,
    Stream0dError,
    ValidationError,
)
from stream0d_nb.records import (
    AlertDelivery,
    AlertPreview,
    AlertRoutes,
    AuditEntry,
    ChannelDeleted,
    ChannelList,
    ChannelsSaved,
    DatasetDeleted,
    DatasetDetail,
    DatasetInfo,
    DatasetSummary,
    DriftCheck,
    EventRecord,
    GrantRecord,
    ModelInfo,
    RunInfo,
    ScheduleInfo,
    SilenceRecord,
    SinkRecord,
    TokenRecord,
    VersionRecord,
    WhoAmI,
)
from stream0d_nb.specs import (
    AppendReport,
    ChannelSpec,
    CommitInfo,
    DatasetSpec,
    FormulaSpec,
    IngestOptions,
    IngestPreview,
    IngestReport,
    format_duration,
    parse_duration_ns,
)
from stream0d_nb.views import ViewSpec

TimeLike = str | datetime | pd.Timestamp | np.datetime64
EXPORT_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".nc": "netcdf"}
EXPORT_SUFFIXES.update({".zarr": "zarr", ".zip": "zarr", ".xlsx": "xlsx"})
TEXT_SUFFIXES = frozenset({".csv", ".tsv", ".txt", ".dat"})
"""Files the ingest preview can read from their first megabytes (the others go whole)."""
PARQUET_TYPE = "application/vnd.apache.parquet"
Progress = Callable[[int, int], None]
"""``progress(sent, total)``: bytes of an upload sent so far, of its total."""

if TYPE_CHECKING:
    from stream0d_nb.alerts.rules import AlertRule

R = TypeVar("R", bound=BaseModel)


def _alert_rule() -> type[AlertRule]:
    """``AlertRule``, imported when first needed: it brings the formula compiler (~0.5 s)."""
    from stream0d_nb.alerts.rules import AlertRule

    return AlertRule


class ApiError(Stream0dError):
    """An error answer of the API; ``status`` and ``type`` are the HTTP status and its class."""

    status: int = 0
    type: str = ""


class NotFoundError(ApiError, DatasetNotFoundError):
    """404: the dataset (or something in it) does not exist or is not visible to you."""


class PermissionDeniedError(ApiError, AccessDeniedError):
    """403: the token or the user's role does not allow this action."""


class AuthenticationError(ApiError, InvalidTokenError):
    """401: the token is missing, unknown, expired or revoked."""


class ConflictError(ApiError, DatasetExistsError):
    """409: the object exists already, or a concurrent write won."""


class RequestValidationError(ApiError, ValidationError):
    """400/413/422: the request is not acceptable (too large, a bad value)."""


class RemoteFormulaError(RequestValidationError):
    """422 for a formula, with where the compiler put its caret: 1-based ``line`` and
    ``column`` in the formula's text, and ``expected`` (what would fit there, for a syntax
    error), as the API's ``locations`` give them (an editor places its annotation there)."""

    line: int | None = None
    column: int | None = None
    expected: tuple[str, ...] = ()


class RemoteIngestError(ApiError, IngestError):
    """422 from an ingest, with the server's ``locations`` (file, line, column, value) and
    ``fixes`` (``Fix``: an ingest option and a value that would get past it)."""


class ServerError(ApiError, RuntimeError):
    """5xx or an answer that is not the API's JSON."""


class ConnectionFailedError(Stream0dError, ConnectionError):
    """The API could not be reached (names the URL)."""


def _time_text(t: TimeLike | None) -> str | None:
    """ISO text of a time (naive times are taken as UTC, as ``Store.read`` does)."""
    if t is None or isinstance(t, str):
        return t
    ts = pd.Timestamp(t)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC")
    return ts.isoformat()


def _error_class(status: int, locations: list[Any] | None) -> type[ApiError]:
    if status == 401:
        return AuthenticationError
    if status == 403:
        return PermissionDeniedError
    if status == 404:
        return NotFoundError
    if status == 409:
        return ConflictError
    if status == 422 and any(isinstance(d, dict) and "file" in d for d in locations or []):
        return RemoteIngestError
    if status in (400, 405, 411, 413, 422):
        return RequestValidationError
    return ServerError


def _formula_place(locations: list[Any] | None) -> dict[str, Any] | None:
    """The first location of a formula error (``line`` and ``column`` numbers, no file)."""
    for d in locations or []:
        if (
            isinstance(d, dict)
            and "file" not in d
            and isinstance(d.get("line"), int)
            and isinstance(d.get("column"), int)
        ):
            return d
    return None


def error_from_response(response: httpx.Response) -> ApiError:
    """The exception matching an error answer ``{"error": {"type", "message", ...}}``."""
    status = response.status_code
    try:
        err = response.json()["error"]
        message = str(err["message"])
        kind = str(err.get("type", ""))
        locs = err.get("locations")
        fixes = [
            Fix(str(d["option"]), d.get("value"), d.get("example"))
            for d in err.get("fixes") or []
            if isinstance(d, dict) and "option" in d
        ]
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:500]
        message = f"HTTP {status} from {response.request.url.copy_with(query=None)}: {text}"
        kind, locs, fixes = "", None, []
    cls = _error_class(status, locs)
    exc: ApiError
    if cls is RemoteIngestError:
        locations = [
            Location(str(d.get("file", "")), d.get("line"), d.get("column"), d.get("value"))
            for d in locs or []
            if isinstance(d, dict)
        ]
        exc = RemoteIngestError(message, locations, fixes)
    elif cls is RequestValidationError and (where := _formula_place(locs)) is not None:
        formula_exc = RemoteFormulaError(message).with_fixes(fixes)
        formula_exc.line, formula_exc.column = where["line"], where["column"]
        formula_exc.expected = tuple(str(e) for e in where.get("expected") or ())
        exc = formula_exc
    else:
        exc = cls(message).with_fixes(fixes)
    exc.status, exc.type = status, kind
    return exc


def _attr(text: str) -> Any:
    """An attribute from Arrow metadata: lists were sent as JSON (``to_arrow``), text as is."""
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def from_arrow(table: pa.Table, attrs: Mapping[str, Any] | None = None) -> xr.Dataset:
    """The ``Store.read`` layout from an Arrow read: naive UTC ``time``, float64 channels
    with the attrs carried in the field metadata."""
    times = table.column("time").cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
    t = np.asarray(times.to_numpy(), dtype=np.int64).view("datetime64[ns]")
    data_vars: dict[str, Any] = {}
    for field in table.schema:
        if field.name == "time":
            continue
        col = table.column(field.name).cast(pa.float64())
        vals = np.asarray(col.to_numpy(), dtype=np.float64)
        meta = {k.decode(): _attr(v.decode()) for k, v in (field.metadata or {}).items()}
        data_vars[field.name] = (("time",), vals, meta)
    ds = xr.Dataset(
        data_vars, coords={"time": ("time", t, {"standard_name": "time", "timezone": "UTC"})}
    )
    schema_meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    ds.attrs.update({k: v for k, v in schema_meta.items() if not k.startswith("pandas")})
    ds.attrs.update(attrs or {})
    ds.attrs.setdefault("Conventions", "CF-1.10")
    return ds


def _loopback_name(url: str) -> tuple[str, dict[str, str]]:
    """``url`` and extra headers such that names under ``.localhost`` reach loopback.

    The hub gives the API its own origin (``http://stream0d--service.localhost:8000``);
    browsers resolve every ``*.localhost`` name to loopback (RFC 6761), but the C library
    here does not. Such a URL is sent to 127.0.0.1 with the name as ``Host``.
    """
    u = httpx.URL(url)
    if u.scheme != "http" or not u.host.endswith(".localhost"):
        return url, {}
    netloc = u.host + (f":{u.port}" if u.port else "")
    return str(u.copy_with(host="127.0.0.1")), {"Host": netloc}


class Client:
    """A synchronous client of the stream0d API at ``url`` with an API ``token``."""

    def __init__(
        self, url: str, token: str, timeout: float = 60, verify: bool | str = True
    ) -> None:
        token = token.strip()
        if not token or any(c.isspace() for c in token):
            raise ValidationError("the token must be one word (as shown when it was created)")
        self.url = url.rstrip("/")
        base, host = _loopback_name(self.url + "/api/")
        self._http = httpx.Client(
            base_url=base,
            headers={"Authorization": f"token {token}", "User-Agent": "stream0d-client"} | host,
            timeout=timeout,
            verify=_ssl_context(verify),
        )

    @classmethod
    def from_env(cls, timeout: float = 60, verify: bool | str = True) -> Client:
        """The client of a notebook on the hub: ``STREAM0D_API_URL`` and ``STREAM0D_API_TOKEN``,
        the API token the hub made for the notebook server when it started (its owner's
        rights, listed on the tokens page). Hub tokens are refused by the API."""
        url = os.environ.get("STREAM0D_API_URL")
        token = os.environ.get("STREAM0D_API_TOKEN")
        if not url or not token:
            raise ValidationError(
                "Client.from_env needs STREAM0D_API_URL and STREAM0D_API_TOKEN (the hub sets "
                "both in a notebook server it starts); else use Client(url, token) with a "
                "token from the tokens page"
            )
        return cls(url, token, timeout=timeout, verify=verify)

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    # --------------------------------------------------------------------- plumbing

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def http(self) -> httpx.Client:
        """The underlying ``httpx.Client`` (for event hooks or extra calls)."""
        return self._http

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            r = self._http.request(method, path, **kw)
        except httpx.TimeoutException as exc:
            raise ConnectionFailedError(f"timed out talking to {self.url}: {exc}") from exc
        except httpx.TransportError as exc:
            raise ConnectionFailedError(f"cannot reach {self.url}: {exc}") from exc
        if r.status_code >= 400:
            raise error_from_response(r)
        return r

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        r = self._request(method, path, **kw)
        return None if r.status_code == 204 or not r.content else r.json()

    def _one(self, record: type[R], method: str, path: str, **kw: Any) -> R:
        """The answer read as one ``record`` (stream0d_nb.records)."""
        return record.model_validate(self._json(method, path, **kw))

    def _many(self, record: type[R], method: str, path: str, **kw: Any) -> list[R]:
        """The answer read as a list of ``record``."""
        return [record.model_validate(r) for r in self._json(method, path, **kw)]

    @staticmethod
    def _ds(dataset_id: str) -> str:
        if not dataset_id or "/" in dataset_id or dataset_id in (".", ".."):
            raise ValidationError(f"dataset id {dataset_id!r} is not valid")
        return f"datasets/{dataset_id}"

    # --------------------------------------------------------------------- datasets

    def whoami(self) -> WhoAmI:
        """Who the service takes this token for (user, groups, scopes, the token's limits)."""
        return self._one(WhoAmI, "GET", "whoami")

    def datasets(self) -> list[DatasetInfo]:
        """The datasets this token may see, each with its spec and the caller's role."""
        return self._many(DatasetInfo, "GET", "datasets")

    def dataset(self, dataset_id: str) -> DatasetDetail:
        """One dataset with what it stores (``summary``: extent, channels, commits)."""
        return self._one(DatasetDetail, "GET", self._ds(dataset_id))

    def create_dataset(self, spec: DatasetSpec | Mapping[str, Any]) -> DatasetInfo:
        """Create a dataset (checked locally first); returns it as the API shows it."""
        s = spec if isinstance(spec, DatasetSpec) else DatasetSpec.model_validate(dict(spec))
        return self._one(DatasetInfo, "POST", "datasets", json=s.model_dump(mode="json"))

    def update_dataset(
        self, dataset_id: str, title: str | None = None, description: str | None = None
    ) -> DatasetInfo:
        """Change a dataset's title or description (editor); None keeps a field."""
        body = {k: v for k, v in (("title", title), ("description", description)) if v is not None}
        return self._one(DatasetInfo, "PATCH", self._ds(dataset_id), json=body)

    def delete_dataset(self, dataset_id: str, confirm: str) -> DatasetDeleted:
        """Delete a dataset and all its data (owner); ``confirm`` repeats its id."""
        path = self._ds(dataset_id)
        return self._one(DatasetDeleted, "DELETE", path, params={"confirm": confirm})

    def channels(self, dataset_id: str, as_of: TimeLike | None = None) -> ChannelList:
        """The dataset's ``stored`` channels (``ChannelSpec``, as of a snapshot or time) and
        ``derived`` ones (``FormulaSpec``)."""
        params = {"as_of": _time_text(as_of)} if as_of is not None else None
        return self._one(ChannelList, "GET", self._ds(dataset_id) + "/channels", params=params)

    def set_channels(
        self, dataset_id: str, channels: list[ChannelSpec | Mapping[str, Any]]
    ) -> list[ChannelSpec]:
        """Create channels or update their metadata (editor); returns every stored channel."""
        specs = [
            c if isinstance(c, ChannelSpec) else ChannelSpec.model_validate(dict(c))
            for c in channels
        ]
        body = [c.model_dump(mode="json") for c in specs]
        return self._one(ChannelsSaved, "PUT", self._ds(dataset_id) + "/channels", json=body).stored

    def delete_channel(self, dataset_id: str, name: str, confirm: str) -> str | None:
        """Delete a channel from now on (owner; history keeps it); returns the commit."""
        path = f"{self._ds(dataset_id)}/channels/{_segment(name)}"
        return self._one(ChannelDeleted, "DELETE", path, params={"confirm": confirm}).commit

    def history(self, dataset_id: str, limit: int = 100) -> list[CommitInfo]:
        """The dataset's commits, newest first."""
        rows = self._json("GET", self._ds(dataset_id) + "/history", params={"limit": limit})
        return [CommitInfo.model_validate(r) for r in rows]

    # --------------------------------------------------------------------- reads

    def read(
        self,
        dataset_id: str,
        channels: list[str] | str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        every: str | None = None,
        how: str = "mean",
        as_of: TimeLike | None = None,
        points: int | None = None,
    ) -> xr.Dataset:
        """Channels (stored or derived) over ``[start, end)`` as ``Store.read`` returns them.

        ``points=N`` asks for a plot-sized read: per channel at most N buckets, each keeping
        its first, last, min and max samples (irregular times; docs/api.md).
        """
        if isinstance(channels, str):
            channels = [channels]
        params: dict[str, str] = {"format": "arrow", "how": how}
        for key, value in (
            ("start", _time_text(start)),
            ("end", _time_text(end)),
            ("as_of", _time_text(as_of)),
            ("every", every),
            ("channels", ",".join(channels) if channels is not None else None),
            ("points", str(points) if points is not None else None),
        ):
            if value is not None:
                params[key] = value
        r = self._request("GET", self._ds(dataset_id) + "/data", params=params)
        try:
            table = pa.ipc.open_stream(r.content).read_all()
        except pa.ArrowInvalid as exc:
            raise ServerError(f"the read answer of {self.url} is not Arrow: {exc}") from exc
        attrs: dict[str, Any] = {"dataset": dataset_id}
        if every is not None:
            attrs["interval"] = format_duration(parse_duration_ns(every, what="every"))
        elif points is None and table.num_rows > 1:  # plot-sized reads carry their interval
            t = table.column("time").cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64())
            attrs["interval"] = format_duration(int(t[1].as_py()) - int(t[0].as_py()))
        return from_arrow(table, attrs)

    def read_pandas(
        self,
        dataset_id: str,
        channels: list[str] | str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        every: str | None = None,
        how: str = "mean",
        as_of: TimeLike | None = None,
        tz: str | None = None,
        points: int | None = None,
    ) -> pd.DataFrame:
        """Like ``read`` as a DataFrame with a tz-aware index (UTC, or ``tz``)."""
        from stream0d_nb.tables import to_pandas

        ds = self.read(dataset_id, channels, start, end, every, how, as_of, points)
        return to_pandas(ds, tz)

    def export(
        self,
        dataset_id: str,
        path: str | Path,
        *,
        format: str | None = None,
        channels: list[str] | str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        every: str | None = None,
        how: str = "mean",
        as_of: TimeLike | None = None,
        tz: str | None = None,
        units_in_header: bool = False,
        overwrite: bool = False,
    ) -> Path:
        """Download an export (CSV, Parquet, NetCDF, Zarr) of stored channels to ``path``.

        ``format`` defaults from the suffix (``.csv .xlsx .parquet .nc .zarr``; ``.zip`` keeps a
        Zarr export zipped, ``.zarr`` unpacks it into a folder). The answer is streamed to
        a temporary sibling and renamed at the end, so a failed download leaves nothing.
        """
        out = Path(path)
        fmt = format or EXPORT_SUFFIXES.get(out.suffix.lower())
        if fmt is None:
            raise ValidationError(
                f"cannot tell the export format of {out.name!r}; pass format= csv, xlsx, "
                "parquet, netcdf or zarr"
            )
        if (out.exists() or out.is_symlink()) and not overwrite:
            raise ValidationError(f"{out} exists already; pass overwrite=True to replace it")
        if isinstance(channels, str):
            channels = [channels]
        params: dict[str, str] = {"format": fmt, "how": how}
        for key, value in (
            ("start", _time_text(start)),
            ("end", _time_text(end)),
            ("as_of", _time_text(as_of)),
            ("every", every),
            ("tz", tz),
            ("channels", ",".join(channels) if channels is not None else None),
        ):
            if value is not None:
                params[key] = value
        if units_in_header:
            params["units_in_header"] = "true"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:12]}.part")
        try:
            self._download(self._ds(dataset_id) + "/export", params, tmp)
            if fmt == "zarr" and out.suffix.lower() != ".zip":
                folder = tmp.with_suffix(".dir")
                with zipfile.ZipFile(tmp) as zf:
                    _safe_extract(zf, folder)
                tmp.unlink()
                tmp = folder
            if out.is_dir() and not out.is_symlink():
                shutil.rmtree(out)
            os.replace(tmp, out)
        finally:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        return out

    def _download(self, path: str, params: Mapping[str, str], target: Path) -> None:
        """Stream a GET answer into ``target`` (API errors raised as for other calls)."""
        try:
            with self._http.stream("GET", path, params=params) as r:
                if r.status_code >= 400:
                    r.read()
                    raise error_from_response(r)
                with target.open("wb") as fh:
                    for chunk in r.iter_bytes(1 << 20):
                        fh.write(chunk)
        except httpx.TimeoutException as exc:
            raise ConnectionFailedError(f"timed out talking to {self.url}: {exc}") from exc
        except httpx.TransportError as exc:
            raise ConnectionFailedError(f"cannot reach {self.url}: {exc}") from exc

    # --------------------------------------------------------------------- ingest

    def ingest(
        self,
        dataset_id: str,
        source: str | Path | pd.DataFrame | bytes,
        options: IngestOptions | Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        progress: Progress | None = None,
    ) -> IngestReport:
        """Ingest a file (CSV, Excel, Parquet, JSON), a file's bytes (``name``: its file
        name, whose extension tells the format) or a DataFrame (sent as Parquet).

        ``progress(sent, total)`` is called, in the calling thread, as the file's bytes go
        out; once ``sent == total`` the API is storing the data and the report follows.
        """
        opts = _ingest_options(options)
        data = {"options": json.dumps(opts.model_dump(mode="json", exclude_defaults=True))}
        url = self._ds(dataset_id) + "/ingest"
        with _upload(source, name) as (filename, fh, content_type):
            body = _Counted(fh, progress)
            r = self._request(
                "POST", url, data=data, files={"file": (filename, body, content_type)}
            )
        return IngestReport.model_validate(r.json())

    def preview_ingest(
        self,
        dataset_id: str,
        file: str | Path | bytes,
        *,
        name: str | None = None,
        options: IngestOptions | Mapping[str, Any] | None = None,
        max_bytes: int | None = 4 << 20,
        rows: int = 20,
        **more: Any,
    ) -> IngestPreview:
        """What ``ingest`` of ``file`` (a path, or bytes named ``name``) with ``options``
        (and/or options as keywords) would do; nothing is stored.

        Text files longer than ``max_bytes`` are sent cut (their first megabytes) and the
        answer says ``truncated``; ``None`` sends the whole file. Excel, Parquet and JSON
        files are always sent whole (they cannot be read from their first bytes).
        """
        given = _ingest_options(options).model_dump(mode="json", exclude_defaults=True)
        opts = IngestOptions.model_validate(given | more)
        data = {
            "options": json.dumps(opts.model_dump(mode="json", exclude_defaults=True)),
            "rows": str(rows),
        }
        text = opts.format == "csv" or (
            opts.format == "auto" and _suffix(file, name) in TEXT_SUFFIXES
        )
        limit = max_bytes if text else None
        with _upload(file, name) as (filename, fh, content_type):
            body = fh.read() if limit is None else fh.read(limit + 1)
        if limit is not None and len(body) > limit:
            body = body[:limit]
            data["truncated"] = "true"
        url = self._ds(dataset_id) + "/ingest/preview"
        r = self._request("POST", url, data=data, files={"file": (filename, body, content_type)})
        return IngestPreview.model_validate(r.json())

    # --------------------------------------------------------------------- formulas

    def formulas(self, dataset_id: str) -> list[FormulaSpec]:
        """The dataset's derived channels."""
        rows = self._json("GET", self._ds(dataset_id) + "/formulas")
        return [FormulaSpec.model_validate(r) for r in rows]

    def formula(self, dataset_id: str, name: str) -> FormulaSpec:
        """One derived channel."""
        return FormulaSpec.model_validate(
            self._json("GET", f"{self._ds(dataset_id)}/formulas/{_segment(name)}")
        )

    def add_formula(
        self, dataset_id: str, spec: FormulaSpec | Mapping[str, Any] | str, formula: str = ""
    ) -> FormulaSpec:
        """Save (create or replace) a derived channel: a spec, or ``name`` and ``formula``."""
        if isinstance(spec, str):
            spec = FormulaSpec(name=spec, formula=formula)
        elif not isinstance(spec, FormulaSpec):
            spec = FormulaSpec.model_validate(dict(spec))
        body = spec.model_dump(mode="json")
        return FormulaSpec.model_validate(
            self._json("POST", self._ds(dataset_id) + "/formulas", json=body)
        )

    def delete_formula(self, dataset_id: str, name: str) -> None:
        """Delete a derived channel (refused while other formulas use it)."""
        self._json("DELETE", f"{self._ds(dataset_id)}/formulas/{_segment(name)}")

    # --------------------------------------------------------------------- summary and views

    def summary(
        self, dataset_id: str, window: str = "1h", end: TimeLike | None = None
    ) -> DatasetSummary:
        """Each stored channel's last value, its age and good share over ``window`` before
        ``end`` (default now), and the last commit: read from the last chunks only."""
        params = {"window": window}
        if end is not None:
            params["end"] = _aware(end) or ""
        return DatasetSummary.model_validate(
            self._json("GET", self._ds(dataset_id) + "/summary", params=params)
        )

    def views(self, dataset_id: str) -> list[ViewSpec]:
        """The dataset's saved views (``view.resolve()`` gives a view's range now)."""
        rows = self._json("GET", self._ds(dataset_id) + "/views")
        return [ViewSpec.model_validate(r) for r in rows]

    def view(self, dataset_id: str, name: str) -> ViewSpec:
        """One saved view."""
        return ViewSpec.model_validate(
            self._json("GET", f"{self._ds(dataset_id)}/views/{_segment(name)}")
        )

    def save_view(
        self, dataset_id: str, view: ViewSpec | Mapping[str, Any] | str, **fields: Any
    ) -> ViewSpec:
        """Create or replace a view: a spec, a mapping, or a name and fields
        (``save_view(ds, "shift", channels=["temp"], start="now-8h", kind="line")``)."""
        if isinstance(view, str):
            view = ViewSpec.model_validate({"name": view, **fields})
        elif not isinstance(view, ViewSpec):
            view = ViewSpec.model_validate({**dict(view), **fields})
        elif fields:
            view = ViewSpec.model_validate({**view.model_dump(), **fields})
        path = f"{self._ds(dataset_id)}/views/{_segment(view.name)}"
        return ViewSpec.model_validate(self._json("PUT", path, json=view.model_dump(mode="json")))

    def update_view(self, dataset_id: str, name: str, **changes: Any) -> ViewSpec:
        """Change some fields of a saved view (``update_view(ds, "shift", start="now-12h")``)."""
        return ViewSpec.model_validate(
            self._json("PATCH", f"{self._ds(dataset_id)}/views/{_segment(name)}", json=changes)
        )

    def delete_view(self, dataset_id: str, name: str) -> None:
        """Delete a saved view."""
        self._json("DELETE", f"{self._ds(dataset_id)}/views/{_segment(name)}")

    # --------------------------------------------------------------------- alerts

    def alert_rules(self, dataset_id: str) -> list[AlertRule]:
        """The dataset's alert rules."""
        rows = self._json("GET", self._ds(dataset_id) + "/alerts")
        return [_alert_rule().model_validate(r) for r in rows]

    def alert_rule(self, dataset_id: str, name: str) -> AlertRule:
        """One alert rule."""
        return _alert_rule().model_validate(
            self._json("GET", f"{self._ds(dataset_id)}/alerts/{_segment(name)}")
        )

    def add_alert_rule(self, dataset_id: str, rule: AlertRule | Mapping[str, Any]) -> AlertRule:
        """Check and save an alert rule (editor)."""
        rule_type = _alert_rule()
        r = rule if isinstance(rule, rule_type) else rule_type.model_validate(dict(rule))
        body = r.model_dump(mode="json", by_alias=False, exclude_none=True)
        return rule_type.model_validate(
            self._json("POST", self._ds(dataset_id) + "/alerts", json=body)
        )

    def delete_alert_rule(self, dataset_id: str, name: str) -> None:
        """Delete an alert rule and its live state (its events stay)."""
        self._json("DELETE", f"{self._ds(dataset_id)}/alerts/{_segment(name)}")

    def alert_events(
        self,
        dataset_id: str,
        rule: str | None = None,
        state: str | None = None,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        limit: int = 100,
        severity: str | None = None,
        cursor: str | None = None,
    ) -> EventPage:
        """Alert events, newest first (``since``/``until`` naive times are UTC): a page of
        ``limit``; pass its ``next_cursor`` as ``cursor`` for the next (None: last page)."""
        params: dict[str, Any] = {"limit": limit}
        for key, value in (
            ("rule", rule),
            ("state", state),
            ("severity", severity),
            ("since", _aware(since)),
            ("until", _aware(until)),
            ("cursor", cursor),
        ):
            if value is not None:
                params[key] = value
        r = self._request("GET", self._ds(dataset_id) + "/alerts/events", params=params)
        page = EventPage(EventRecord.model_validate(e) for e in r.json())
        page.next_cursor = r.headers.get("X-Next-Cursor")
        return page

    def eval_formula(
        self,
        dataset_id: str,
        formula: str,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        every: str | None = None,
        how: str = "mean",
        as_of: TimeLike | None = None,
    ) -> xr.Dataset:
        """Evaluate a formula over ``[start, end)`` without saving it: like ``read`` of a
        derived channel, as the channel ``value`` (its units in the attrs)."""
        body: dict[str, Any] = {"formula": formula, "how": how, "format": "arrow"}
        for key, value in (
            ("start", _time_text(start)),
            ("end", _time_text(end)),
            ("as_of", _time_text(as_of)),
            ("every", every),
        ):
            if value is not None:
                body[key] = value
        r = self._request("POST", self._ds(dataset_id) + "/formulas/eval", json=body)
        try:  # dataset, snapshot and interval come in the schema's metadata
            return from_arrow(pa.ipc.open_stream(r.content).read_all())
        except pa.ArrowInvalid as exc:
            raise ServerError(f"the eval answer of {self.url} is not Arrow: {exc}") from exc

    def preview_alert_rule(
        self,
        dataset_id: str,
        rule: AlertRule | Mapping[str, Any],
        start: TimeLike | None = None,
        end: TimeLike | None = None,
    ) -> AlertPreview:
        """Run an unsaved rule over ``[start, end)`` (nothing stored or sent): its
        ``episodes`` and ``transitions`` (UTC times, series, states, severity, values)."""
        rule_type = _alert_rule()
        r = rule if isinstance(rule, rule_type) else rule_type.model_validate(dict(rule))
        body: dict[str, Any] = {
            "rule": r.model_dump(mode="json", by_alias=False, exclude_none=True)
        }
        for key, value in (("start", _aware(start)), ("end", _aware(end))):
            if value is not None:
                body[key] = value
        return self._one(AlertPreview, "POST", self._ds(dataset_id) + "/alerts/preview", json=body)

    def backfill_alert_rules(
        self,
        dataset_id: str,
        rules: list[str] | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
    ) -> list[AlertPreview]:
        """Run the dataset's saved rules (``rules``: those named; default all) over
        ``[start, end)`` (default: the data), nothing stored or sent: per rule, its
        ``episodes`` and ``transitions``, as ``stream0d alerts backfill``."""
        body: dict[str, Any] = {}
        for key, value in (("rules", rules), ("start", _aware(start)), ("end", _aware(end))):
            if value is not None:
                body[key] = list(value) if key == "rules" else value
        path = self._ds(dataset_id) + "/alerts/backfill"
        return self._many(AlertPreview, "POST", path, json=body)

    def alert_deliveries(
        self, dataset_id: str | None = None, failed: bool = False, limit: int = 50
    ) -> list[AlertDelivery]:
        """Notifications sent to sinks and their failures, newest first: of one dataset's
        alerts (its owners), or of every dataset's (``dataset_id`` None: hub admins)."""
        params: dict[str, Any] = {"failed": failed, "limit": limit}
        if dataset_id is None:
            return self._many(AlertDelivery, "GET", "alerts/deliveries", params=params)
        path = self._ds(dataset_id) + "/alerts/deliveries"
        return self._many(AlertDelivery, "GET", path, params=params)

    def silences(self, dataset_id: str) -> list[SilenceRecord]:
        """The dataset's silences: ``id``, ``rule`` (None: all rules) and the window."""
        return self._many(SilenceRecord, "GET", self._ds(dataset_id) + "/alerts/silences")

    def silence(
        self,
        dataset_id: str,
        rule: str | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        days: list[int] | None = None,
        from_time: str | None = None,
        to_time: str | None = None,
        tz: str = "UTC",
        comment: str = "",
    ) -> SilenceRecord:
        """Mute notifications of a dataset (or one rule): ``start``/``end``, or weekly on
        ``days`` (0 = Monday) from ``from_time`` to ``to_time`` (HH:MM in ``tz``). Editor."""
        body: dict[str, Any] = {"rule": rule, "tz": tz, "comment": comment}
        for key, value in (
            ("start", _aware(start)),
            ("end", _aware(end)),
            ("days", days),
            ("from_time", from_time),
            ("to_time", to_time),
        ):
            if value is not None:
                body[key] = value
        return self._one(
            SilenceRecord, "POST", self._ds(dataset_id) + "/alerts/silences", json=body
        )

    def end_silence(self, dataset_id: str, silence_id: int) -> None:
        """End (remove) a silence by its id (editor)."""
        self._json("DELETE", f"{self._ds(dataset_id)}/alerts/silences/{int(silence_id)}")

    def sinks(self) -> list[SinkRecord]:
        """Notification sinks with their kind and ``settings``, secrets masked (hub admins)."""
        return self._many(SinkRecord, "GET", "alerts/sinks")

    def save_sink(self, name: str, kind: str, **settings: Any) -> SinkRecord:
        """Add or replace a sink, e.g. ``save_sink("ops", "webhook", url=..., secret=...)``
        (hub admins); answers its settings with secrets masked."""
        path = f"alerts/sinks/{quote(name, safe='')}"
        return self._one(SinkRecord, "PUT", path, json={"kind": kind, **settings})

    def delete_sink(self, name: str) -> None:
        """Remove a sink (hub admins)."""
        self._json("DELETE", f"alerts/sinks/{quote(name, safe='')}")

    def alert_routes(self, dataset_id: str) -> AlertRoutes:
        """Which sinks the dataset's alerts go to, by severity and labels (owner)."""
        return self._one(AlertRoutes, "GET", self._ds(dataset_id) + "/alerts/routes")

    def set_alert_routes(
        self, dataset_id: str, table: AlertRoutes | Mapping[str, Any]
    ) -> AlertRoutes:
        """Replace the dataset's routing table, e.g. ``{"routes": [{"min_severity":
        "major", "sinks": ["ops"]}], "default_sinks": ["in-app"]}`` (owner)."""
        body = (
            table.model_dump(mode="json", by_alias=True)
            if isinstance(table, AlertRoutes)
            else dict(table)
        )
        return self._one(AlertRoutes, "PUT", self._ds(dataset_id) + "/alerts/routes", json=body)

    # --------------------------------------------------------------------- recalibration

    def models(self, dataset_id: str) -> list[ModelInfo]:
        """The dataset's process models with their active version."""
        return self._many(ModelInfo, "GET", f"{self._ds(dataset_id)}/models")

    def model(self, dataset_id: str, name: str) -> ModelInfo:
        """One model with its active version."""
        return self._one(ModelInfo, "GET", f"{self._ds(dataset_id)}/models/{_segment(name)}")

    def save_model(
        self,
        dataset_id: str,
        name: str,
        *,
        kind: str,
        output: str,
        inputs: list[str],
        options: Mapping[str, Any] | None = None,
        activation: Mapping[str, Any] | None = None,
    ) -> ModelInfo:
        """Create or redefine a model (editor), e.g. ``save_model(ds, "zone",
        kind="first_order_thermal", output="zone_temp", inputs=["heater_power"],
        activation={"metric": "cv_rmse", "margin": 0.02})``."""
        body: dict[str, Any] = {"kind": kind, "output": output, "inputs": list(inputs)}
        body["options"] = dict(options or {})
        if activation is not None:
            body["activation"] = dict(activation)
        path = f"{self._ds(dataset_id)}/models/{_segment(name)}"
        return self._one(ModelInfo, "PUT", path, json=body)

    def model_versions(self, dataset_id: str, name: str, limit: int = 100) -> list[VersionRecord]:
        """A model's versions, newest first, with metrics and the reason of each decision."""
        path = f"{self._ds(dataset_id)}/models/{_segment(name)}/versions"
        return self._many(VersionRecord, "GET", path, params={"limit": limit})

    def model_drift(
        self,
        dataset_id: str,
        name: str,
        *,
        window: str = "1h",
        cv_threshold: float = 30.0,
        delta: float = 0.5,
        threshold: float = 50.0,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
    ) -> DriftCheck:
        """Check the active version's residuals for drift (``stream0d recal drift``): rolling
        CV(RMSE) over ``window`` above ``cv_threshold`` %, Page-Hinkley (``delta``,
        ``threshold``) on the residual mean, since its hold-out window (or ``[start, end)``).
        To recalibrate on drift, follow with ``start_recal_run`` when ``.drifted``."""
        params: dict[str, Any] = {
            "window": window,
            "cv_threshold": cv_threshold,
            "delta": delta,
            "threshold": threshold,
        }
        for key, t in (("start", start), ("end", end)):
            if t is not None:
                params[key] = _time_text(t)
        path = f"{self._ds(dataset_id)}/models/{_segment(name)}/drift"
        return self._one(DriftCheck, "GET", path, params=params)

    def recal_runs(
        self, dataset_id: str, status: str | None = None, limit: int = 50
    ) -> list[RunInfo]:
        """The dataset's notebook runs, newest first."""
        params: dict[str, Any] = {"limit": limit} | ({"status": status} if status else {})
        path = f"{self._ds(dataset_id)}/recalibration/runs"
        return self._many(RunInfo, "GET", path, params=params)

    def recal_run(self, dataset_id: str, run_id: int) -> RunInfo:
        """One notebook run (status, error, metrics, which files it has)."""
        path = f"{self._ds(dataset_id)}/recalibration/runs/{int(run_id)}"
        return self._one(RunInfo, "GET", path)

    def start_recal_run(
        self,
        dataset_id: str,
        parameters: Mapping[str, Any],
        notebook: str = "recalibrate",
        timeout_s: float | None = None,
    ) -> RunInfo:
        """Start a notebook run on the dataset now (editor); returns the queued run at once
        (follow it with ``recal_run`` or ``wait_recal_run``)."""
        body: dict[str, Any] = {"notebook": notebook, "parameters": dict(parameters)}
        if timeout_s is not None:
            body["timeout_s"] = timeout_s
        return self._one(RunInfo, "POST", f"{self._ds(dataset_id)}/recalibration/runs", json=body)

    def run_recal_schedule(self, dataset_id: str, name: str) -> RunInfo:
        """Run one of the dataset's schedules now with its own notebook and parameters
        (editor; ``ConflictError`` while it runs already); returns the queued run at once,
        trigger ``manual:<name>`` (follow it with ``wait_recal_run``)."""
        path = f"{self._ds(dataset_id)}/recalibration/schedules/{_segment(name)}/run"
        return self._one(RunInfo, "POST", path)

    def wait_recal_run(
        self, dataset_id: str, run_id: int, timeout: float = 700, poll: float = 1.0
    ) -> RunInfo:
        """Poll a run until it is no longer queued or running (TimeoutError after ``timeout``)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            run = self.recal_run(dataset_id, run_id)
            if run.status not in ("queued", "running"):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {run.status} after {timeout:g} s")
            time.sleep(poll)

    def recal_run_file(self, dataset_id: str, run_id: int, what: str) -> bytes:
        """A run's ``log`` (kernel stderr), ``notebook`` (.ipynb) or ``report`` (HTML)."""
        if what not in ("log", "notebook", "report"):
            raise ValidationError(f"what: {what!r} is not log, notebook or report")
        path = f"{self._ds(dataset_id)}/recalibration/runs/{int(run_id)}/{what}"
        return self._request("GET", path).content

    def recal_schedules(self, dataset_id: str) -> list[ScheduleInfo]:
        """The dataset's recalibration schedules with their next slot."""
        return self._many(ScheduleInfo, "GET", f"{self._ds(dataset_id)}/recalibration/schedules")

    def add_recal_schedule(
        self, dataset_id: str, name: str, cron: str, parameters: Mapping[str, Any], **fields: Any
    ) -> ScheduleInfo:
        """Schedule a notebook on the dataset (editor); ``fields``: notebook, catch_up,
        max_catch_up, timeout_s, enabled."""
        body = {"name": name, "cron": cron, "parameters": dict(parameters), **fields}
        path = f"{self._ds(dataset_id)}/recalibration/schedules"
        return self._one(ScheduleInfo, "POST", path, json=body)

    def update_recal_schedule(self, dataset_id: str, name: str, **changes: Any) -> ScheduleInfo:
        """Change a schedule (``cron=...``, ``parameters=...``) or pause it (``enabled=False``)."""
        path = f"{self._ds(dataset_id)}/recalibration/schedules/{_segment(name)}"
        return self._one(ScheduleInfo, "PATCH", path, json=changes)

    def delete_recal_schedule(self, dataset_id: str, name: str) -> None:
        """Delete a schedule (its runs stay)."""
        self._json("DELETE", f"{self._ds(dataset_id)}/recalibration/schedules/{_segment(name)}")

    # --------------------------------------------------------------------- access

    def grants(self, dataset_id: str) -> list[GrantRecord]:
        """Who has which role on the dataset besides its partner and admins (owner)."""
        rows = self._json("GET", self._ds(dataset_id) + "/grants")
        return [GrantRecord.model_validate(r) for r in rows]

    def grant(self, dataset_id: str, kind: str, principal: str, role: str) -> GrantRecord:
        """Give a partner group (``kind="group"``) or a user a role (owner); audited."""
        body = {"kind": kind, "principal": principal, "role": role}
        return GrantRecord.model_validate(
            self._json("POST", self._ds(dataset_id) + "/grants", json=body)
        )

    def revoke_grant(self, dataset_id: str, kind: str, principal: str) -> None:
        """Remove a grant (owner); audited."""
        self._json(
            "DELETE", f"{self._ds(dataset_id)}/grants/{_segment(kind)}/{_segment(principal)}"
        )

    def audit(
        self,
        dataset_id: str,
        action: str | None = None,
        since: TimeLike | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """The dataset's audit log, newest first (owner)."""
        params: dict[str, Any] = {"limit": limit}
        if action is not None:
            params["action"] = action
        if since is not None:
            params["since"] = _aware(since)
        rows = self._json("GET", self._ds(dataset_id) + "/audit", params=params)
        return [AuditEntry.model_validate(r) for r in rows]

    def tokens(self) -> list[TokenRecord]:
        """The caller's API tokens, newest first (never their secrets)."""
        return [TokenRecord.model_validate(r) for r in self._json("GET", "tokens")]

    def revoke_token(self, token_id: str) -> TokenRecord:
        """Revoke one of the caller's tokens (this one too: later calls get 401)."""
        return TokenRecord.model_validate(self._json("DELETE", f"tokens/{_segment(token_id)}"))

    # --------------------------------------------------------------------- appends

    def append(
        self,
        dataset_id: str,
        rows: pd.DataFrame | list[Mapping[str, Any]],
        off_grid: str = "error",
        off_grid_tolerance: str | None = None,
    ) -> AppendReport:
        """Append a few rows to existing channels (a gateway's last seconds).

        ``rows``: a DataFrame with a time index (naive times in the dataset's zone, as
        ingest) and one column per channel, sent as Arrow; or a list of objects with
        ``time`` (ISO text) and channel values, sent as JSON. Answered once the rows are
        durable and readable; sending the same rows again changes nothing.
        """
        url = self._ds(dataset_id) + "/append"
        if isinstance(rows, pd.DataFrame):
            if not isinstance(rows.index, pd.DatetimeIndex):
                raise ValidationError("appended rows need a DatetimeIndex")
            frame = rows.reset_index(names="time").astype({c: "float64" for c in rows.columns})
            table = pa.Table.from_pandas(frame, preserve_index=False)
            sink = io.BytesIO()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            params = {"off_grid": off_grid}
            if off_grid_tolerance is not None:
                params["off_grid_tolerance"] = off_grid_tolerance
            r = self._request(
                "POST",
                url,
                content=sink.getvalue(),
                params=params,
                headers={"Content-Type": "application/vnd.apache.arrow.stream"},
            )
        else:
            body = {
                "rows": [
                    {k: (_time_text(v) if k == "time" else v) for k, v in row.items()}
                    for row in rows
                ],
                "off_grid": off_grid,
                "off_grid_tolerance": off_grid_tolerance,
            }
            r = self._request("POST", url, json=body)
        return AppendReport.model_validate(r.json())


class EventPage(list[EventRecord]):
    """A page of alert events; ``next_cursor`` asks for the next one (None: no more)."""

    next_cursor: str | None = None


def _safe_extract(zf: zipfile.ZipFile, folder: Path) -> None:
    """Unzip into ``folder``, refusing members that would land outside it."""
    root = folder.resolve()
    for member in zf.infolist():
        dest = (folder / member.filename).resolve()
        if not dest.is_relative_to(root):
            raise ServerError(f"export archive member {member.filename!r} escapes its folder")
    zf.extractall(folder)


def _ssl_context(verify: bool | str) -> bool | ssl.SSLContext:
    """``verify`` as httpx wants it: a bool, or a context trusting a CA file or directory."""
    if isinstance(verify, bool):
        return verify
    p = Path(verify)
    if p.is_file():
        return ssl.create_default_context(cafile=str(p))
    if p.is_dir():
        return ssl.create_default_context(capath=str(p))
    raise ValidationError(f"verify={verify!r} is neither a CA bundle file nor a directory")


def _segment(name: str) -> str:
    """A name as one URL path segment."""
    if not name or "/" in name or name in (".", ".."):
        raise ValidationError(f"name {name!r} is not valid")
    return name


def _aware(t: TimeLike | None) -> str | None:
    """ISO text with a zone (the events endpoint wants one)."""
    if t is None:
        return None
    ts = pd.Timestamp(t)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.isoformat()


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    """A DataFrame with a time index (or a time column) as Parquet bytes."""
    import pyarrow.parquet as pq

    frame = df
    if isinstance(df.index, pd.DatetimeIndex):
        frame = df.reset_index(names=df.index.name or "time")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _ingest_options(options: IngestOptions | Mapping[str, Any] | None) -> IngestOptions:
    if options is None:
        return IngestOptions()
    if isinstance(options, IngestOptions):
        return options
    return IngestOptions.model_validate(dict(options))


def _suffix(source: object, name: str | None) -> str:
    """The lower-case extension of the file ``source`` (a path) or ``name`` (its bytes)."""
    label = name if name is not None else source if isinstance(source, str | Path) else ""
    return Path(str(label)).suffix.lower()


@contextmanager
def _upload(
    source: str | Path | pd.DataFrame | bytes, name: str | None
) -> Iterator[tuple[str, io.BufferedIOBase | io.BytesIO, str | None]]:
    """``(file name, binary file, content type)`` of what an ingest sends: a path opened,
    bytes named ``name``, a DataFrame as Parquet."""
    if isinstance(source, pd.DataFrame):
        yield "dataframe.parquet", io.BytesIO(_parquet_bytes(source)), PARQUET_TYPE
    elif isinstance(source, bytes | bytearray | memoryview):
        if not name or not Path(name).name:
            raise ValidationError(
                "bytes need the file's name (name='data.csv'): its extension tells the format"
            )
        yield Path(name).name, io.BytesIO(bytes(source)), None
    else:
        p = Path(source)
        if not p.is_file():
            raise IngestError(f"{p}: no such file", [Location(str(p))])
        with p.open("rb") as fh:
            yield name or p.name, fh, None


class _Counted(io.RawIOBase):
    """A binary file read by httpx, telling ``progress(sent, total)`` as it is read; it
    seeks and tells, so that httpx sends its ``Content-Length`` up front."""

    def __init__(self, fh: io.BufferedIOBase | io.BytesIO, progress: Progress | None) -> None:
        super().__init__()
        self._fh = fh
        self._progress = progress
        start = fh.tell()
        self._total = fh.seek(0, io.SEEK_END)
        fh.seek(start)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._fh.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._fh.seek(offset, whence)

    def read(self, size: int | None = -1) -> bytes:
        chunk = self._fh.read(-1 if size is None else size)
        if self._progress is not None:
            self._progress(self._fh.tell(), self._total)
        return chunk

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)
