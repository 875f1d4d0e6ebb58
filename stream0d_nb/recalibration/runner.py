"""Run a parameterised notebook with Papermill, keep every output, record the run.

``run_notebook(store, notebook, parameters)``:

1. checks the parameters against the notebook's ``parameters`` cell with
   ``papermill.inspect_notebook`` **before** anything starts: unknown names, required
   ones left out (declared ``name: type = None``) and values of the wrong type are
   refused with one clear ``ValidationError`` (no run is recorded for a refused call
   unless it came from a schedule);
2. records a run (``queued`` then ``running``) and executes the notebook through the
   Papermill Python API with the project's own kernel (a kernelspec named
   ``stream0d-nb`` whose ``argv`` is this interpreter, written under
   ``$STREAM0D_HOME/jupyter``; no network, no global Jupyter setup), the store settings
   passed to the kernel in its environment, and a wall-clock **time limit** for the
   whole run (each cell gets what is left of it);
3. writes the executed notebook, an HTML report without code (nbconvert,
   ``exclude_input``) and the metrics JSON the notebook saved into the run's folder:
   ``$STREAM0D_HOME/recalibration_runs/<run id>-<notebook>/`` locally, or
   ``az://<container>/<prefix>/recalibration_runs/...`` when the store is on Azure;
4. records the outcome: status (``succeeded``, ``failed``, ``timed_out``), duration,
   snapshot id and model version (from the metrics), and on failure the index of the
   failing cell with the error name and message. A failed run keeps its output
   notebook (Papermill saves it after each cell) and raises an alert event
   (``recalibration-run``) on the run's dataset through the alert service.

Notebooks receive two parameters from the runner when they declare them: ``run_id``
and ``metrics_path`` (where to write their metrics JSON, see ``save_metrics``).
"""

from __future__ import annotations

import ast
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from stream0d_nb.db.base import utcnow
from stream0d_nb.db.recal_tables import RecalRegistry, RunRecord, run_allowance
from stream0d_nb.errors import ValidationError
from stream0d_nb.settings import Settings
from stream0d_nb.store import Store

log = logging.getLogger(__name__)

KERNEL_NAME = "stream0d-nb"
RESERVED = ("run_id", "metrics_path")
RUNS_DIR = "recalibration_runs"
ALERT_NAME = "recalibration-run"
DEFAULT_TIMEOUT_S = 600.0


# ---- kernel ------------------------------------------------------------------------------
def kernel_dir(settings: Settings) -> Path:
    """Where the project's kernelspec lives (``<home>/jupyter/kernels``)."""
    return (settings.home / "jupyter" / "kernels").resolve()


def ensure_kernelspec(settings: Settings) -> Path:
    """Write (or refresh) the ``stream0d-nb`` kernelspec that runs this interpreter."""
    path = kernel_dir(settings) / KERNEL_NAME
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "stream0d_nb (project env)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    target = path / "kernel.json"
    if not target.is_file() or json.loads(target.read_text()) != spec:
        path.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".kernel-{uuid.uuid4().hex}.tmp")  # concurrent runs
        tmp.write_text(json.dumps(spec, indent=1))
        tmp.replace(target)
    return path


def settings_env(settings: Settings) -> dict[str, str]:
    """``STREAM0D_*`` variables that make a child process open the same store."""
    env = {"STREAM0D_HOME": str(settings.home.resolve())}
    for field in ("storage_url", "database_url", "azure_account", "azure_key"):
        value = getattr(settings, field)
        if value:
            env[f"STREAM0D_{field.upper()}"] = str(value)
    for field in ("azure_sas_token", "azure_endpoint", "user"):
        value = getattr(settings, field)
        if value:
            env[f"STREAM0D_{field.upper()}"] = str(value)
    env["STREAM0D_DATABASE_URL"] = settings.resolved_database_url()
    env["STREAM0D_STORAGE_URL"] = settings.resolved_storage_url()
    return env


def _kernel_manager_class(settings: Settings, log_path: Path | None = None) -> type:
    """An AsyncKernelManager finding our kernelspec and passing the store's environment.

    The kernel's own stdout/stderr (startup warnings, crashes) go to ``log_path``.
    """
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    dirs = [str(kernel_dir(settings))]
    extra = settings_env(settings)

    class ProjectKernelManager(AsyncKernelManager):
        def _kernel_spec_manager_default(self) -> KernelSpecManager:
            ksm = KernelSpecManager(data_dir=self.data_dir)
            ksm.kernel_dirs = dirs + list(ksm.kernel_dirs)
            return ksm

        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            env = dict(kw.pop("env", None) or os.environ)
            env.update(extra)
            env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
            if log_path is not None:
                with open(log_path, "ab") as fh:  # the child keeps its own copy of the fd
                    await super().start_kernel(env=env, stdout=fh, stderr=fh, **kw)
                return
            await super().start_kernel(env=env, **kw)

    return ProjectKernelManager


# ---- parameters ----------------------------------------------------------------------------
_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list, tuple),
    "dict": (dict,),
}


def _accepts(type_name: str, value: Any) -> bool:
    """Whether ``value`` fits a parameter's declared (or inferred) type name."""
    names = [t.strip() for t in re.split(r"[|,\[\]]|Optional|Union", type_name) if t.strip()]
    if value is None:
        return "None" in names or "Optional" in type_name or not names
    known = [n for n in names if n in _TYPES]
    if not known:
        return True  # a type we do not check (Any, a class...)
    if isinstance(value, bool) and "bool" not in known:
        return False
    return any(isinstance(value, _TYPES[n]) for n in known)


def _default(text: str | None) -> Any:
    try:
        return ast.literal_eval(text) if text is not None else None
    except (ValueError, SyntaxError):
        return text


def notebook_parameters(notebook: Path | str) -> dict[str, dict[str, Any]]:
    """The notebook's parameters (name -> type, default, help) from its ``parameters`` cell."""
    import papermill

    path = Path(notebook)
    if not path.is_file():
        raise ValidationError(f"notebook {str(path)!r} not found")
    try:
        params = papermill.inspect_notebook(str(path))
    except Exception as exc:
        raise ValidationError(f"cannot read the parameters of {path.name}: {exc}") from None
    if not params:
        raise ValidationError(f"{path.name} has no cell tagged 'parameters'")
    out: dict[str, dict[str, Any]] = {}
    for name, p in params.items():
        default = _default(p.get("default"))
        type_name = p.get("inferred_type_name") or "None"
        if type_name == "None" and default is not None:  # no annotation: type of the default
            type_name = type(default).__name__
        out[name] = {"type": type_name, "default": default, "help": p.get("help") or ""}
    return out


def check_parameters(notebook: Path | str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Refuse unknown, missing or mistyped parameters before anything starts."""
    declared = notebook_parameters(notebook)
    name = Path(notebook).name
    problems: list[str] = []
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        problems.append(
            f"unknown parameter(s) {', '.join(unknown)} (the notebook declares: "
            + ", ".join(n for n in declared if n not in RESERVED)
            + ")"
        )
    reserved = sorted(set(parameters) & set(RESERVED))
    if reserved:
        problems.append(f"{', '.join(reserved)} are set by the runner, not by the caller")
    for pname, p in declared.items():
        if pname in RESERVED:
            continue
        required = p["default"] is None and "None" not in p["type"] and "Optional" not in p["type"]
        if pname not in parameters:
            if required:
                problems.append(f"missing required parameter {pname!r} ({p['type']})")
            continue
        value = parameters[pname]
        if not _accepts(p["type"], value):
            problems.append(
                f"parameter {pname!r} must be {p['type']}, not {type(value).__name__} ({value!r})"
            )
    if problems:
        raise ValidationError(f"{name}: " + "; ".join(problems))
    return dict(parameters)


# ---- where outputs go -----------------------------------------------------------------------
class RunsFolder:
    """The runs folder: local under home, or blobs next to the datasets on Azure."""

    def __init__(self, settings: Settings) -> None:
        from stream0d_nb.store.storage import parse_root

        self.settings = settings
        self.root = parse_root(settings.resolved_storage_url())

    @property
    def remote(self) -> bool:
        """Whether outputs are uploaded to Azure."""
        return self.root.kind == "azure"

    def local_dir(self, run_name: str) -> Path:
        """Where a run writes its files first (the final place when local)."""
        if self.remote:
            return Path(tempfile.mkdtemp(prefix=f"stream0d-run-{run_name}-"))
        d = (self.settings.home / RUNS_DIR / run_name).resolve()
        d.mkdir(parents=True, exist_ok=True)
        return d

    def publish(self, run_name: str, files: dict[str, Path]) -> dict[str, str]:
        """Upload (Azure) or keep (local) the files; returns their addresses."""
        if not self.remote:
            return {k: str(p) for k, p in files.items() if p.is_file()}
        from azure.storage.blob import ContentSettings

        from stream0d_nb.store.storage import _container_client

        cc = _container_client(self.root, self.settings)
        prefix = "/".join(p for p in (self.root.path.strip("/"), RUNS_DIR, run_name) if p)
        types = {".html": "text/html", ".json": "application/json", ".ipynb": "application/json"}
        out: dict[str, str] = {}
        for key, path in files.items():
            if not path.is_file():
                continue
            blob = f"{prefix}/{path.name}"
            with path.open("rb") as fh:
                cc.upload_blob(
                    blob,
                    fh,
                    overwrite=True,
                    content_settings=ContentSettings(content_type=types.get(path.suffix)),
                )
            out[key] = f"az://{self.root.container}/{blob}"
        shutil.rmtree(next(iter(files.values())).parent, ignore_errors=True)
        return out


# ---- notebook helpers (called from inside notebooks) ------------------------------------------
def save_metrics(path: str | Path | None, metrics: Mapping[str, Any]) -> None:
    """Write a notebook's metrics JSON where the runner asked (no-op when run by hand)."""
    if not path:
        return
    Path(path).write_text(json.dumps(dict(metrics), indent=1, default=str))


# ---- running ----------------------------------------------------------------------------------
@dataclass
class RunResult:
    """A finished run as recorded."""

    run: RunRecord

    @property
    def ok(self) -> bool:
        """Whether the notebook ran to the end."""
        return self.run.status == "succeeded"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "run"


def html_report(executed: Path, target: Path) -> Path:
    """An HTML report of an executed notebook without its code (inputs and prompts hidden)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed), as_version=4)
    # No CDN scripts (MathJax, require.js, mermaid): reports are opened offline too, and
    # ours hold tables, text and inline SVG only.
    no_cdn = dict.fromkeys(
        ("mathjax_url", "require_js_url", "mermaid_js_url", "mermaid_layout_elk_js_url"), ""
    )
    exporter = HTMLExporter(
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True, **no_cdn
    )
    body, _ = exporter.from_notebook_node(nb)
    body = re.sub(r'<script src="">\s*</script>', "", body)
    target.write_text(body, encoding="utf-8")
    return target


def _failure(exc: BaseException) -> tuple[str, int | None, str, str]:
    """(status, cell index, error name, message) of an execution error."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return "failed", int(exc.cell_index), str(exc.ename), str(exc.evalue)
    if isinstance(exc, CellTimeoutError | TimeoutError):
        return "timed_out", None, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else ""
    if isinstance(exc, DeadKernelError):
        return "failed", None, "DeadKernelError", str(exc)
    return "failed", None, type(exc).__name__, str(exc)


def _error_cell(executed: Path, fallback: int) -> int:
    """The index, in the saved notebook (after papermill's error banner), of the failed cell."""
    try:
        nb = json.loads(executed.read_text())
    except (OSError, ValueError):
        return fallback
    for i, cell in enumerate(nb.get("cells", [])):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return i
    return fallback


def _timeout_cell(executed: Path, cell_id: str | None) -> int | None:
    """The index, in the executed notebook, of the cell that was running at the time limit."""
    try:
        nb = json.loads(executed.read_text())
    except (OSError, ValueError):
        return None
    for i, cell in enumerate(nb.get("cells", [])):
        if cell_id is not None and cell.get("id") == cell_id:
            return i
    return None


def run_notebook(
    store: Store,
    notebook: str | Path,
    parameters: Mapping[str, Any] | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    trigger: str = "manual",
    actor: str | None = None,
    dataset_id: str | None = None,
    run: RunRecord | None = None,
    alert: bool = True,
) -> RunResult:
    """Check, execute and record one notebook run (see the module docstring).

    ``run`` continues a run created (and claimed) by the scheduler; otherwise a new one
    is recorded once the parameters are accepted. Never raises for a notebook failure:
    the outcome is in the returned record.
    """
    import papermill

    params = dict(parameters or {})
    nb_path = Path(notebook).resolve()
    table = RecalRegistry(store.registry)
    who = store.actor(actor)
    ds = dataset_id or (params.get("dataset") if isinstance(params.get("dataset"), str) else None)
    if run is None:
        check_parameters(nb_path, params)
        run = table.create_run(
            notebook=str(nb_path),
            parameters=params,
            trigger=trigger,
            actor=who,
            dataset_id=ds,
            timeout_s=timeout_s,
        )
    else:
        try:
            check_parameters(nb_path, params)
        except ValidationError as exc:
            rec = table.update_run(
                run.id,
                status="failed",
                started_at=utcnow(),
                ended_at=utcnow(),
                duration_s=0.0,
                error_name="ParameterError",
                error_message=str(exc),
            )
            if alert:
                _alert(store, rec, who)
            return RunResult(rec)
    run_name = f"{run.id:06d}-{_slug(nb_path.stem)}"
    folder = RunsFolder(store.settings)
    work = folder.local_dir(run_name)
    out_nb = work / f"{nb_path.stem}.ipynb"
    out_html = work / f"{nb_path.stem}.html"
    out_metrics = work / "metrics.json"
    out_log = work / "kernel.log"
    declared = notebook_parameters(nb_path)
    injected = dict(params)
    if "run_id" in declared:
        injected["run_id"] = run.id
    if "metrics_path" in declared:
        injected["metrics_path"] = str(out_metrics)
    ensure_kernelspec(store.settings)
    started = utcnow()
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    table.update_run(
        run.id, status="running", started_at=started, deadline=started + run_allowance(timeout_s)
    )
    status, cell, ename, message = "succeeded", None, None, None

    current: dict[str, str | None] = {"cell": None}

    def remaining(cell: Any) -> float:  # nbclient asks before each cell: what is left
        current["cell"] = cell.get("id") if cell is not None else None
        return max(deadline - time.monotonic(), 0.01)

    try:
        papermill.execute_notebook(
            str(nb_path),
            str(out_nb),
            parameters=injected,
            kernel_name=KERNEL_NAME,
            progress_bar=False,
            log_output=False,
            start_timeout=max(5.0, min(60.0, timeout_s)),
            cwd=str(nb_path.parent),
            kernel_manager_class=_kernel_manager_class(store.settings, out_log),
            timeout_func=remaining,
        )
    except Exception as exc:
        status, cell, ename, message = _failure(exc)
        if status == "failed" and cell is not None:
            cell = _error_cell(out_nb, cell)
        if status == "timed_out":
            cell = _timeout_cell(out_nb, current["cell"])
            message = f"time limit of {timeout_s:g} s reached" + (
                f" in cell {cell}" if cell is not None else ""
            )
        log.warning("run %s of %s %s: %s", run.id, nb_path.name, status, message)
    duration = time.monotonic() - t0
    metrics: dict[str, Any] = {}
    if out_metrics.is_file():
        try:
            metrics = json.loads(out_metrics.read_text())
        except ValueError:
            metrics = {"error": "the notebook wrote metrics that are not JSON"}
    else:
        out_metrics.write_text(json.dumps({}, indent=1))
    metrics.setdefault("run", {})
    metrics["run"] = {"status": status, "duration_s": round(duration, 3)}
    out_metrics.write_text(json.dumps(metrics, indent=1, default=str))
    if out_nb.is_file():
        try:
            html_report(out_nb, out_html)
        except Exception as exc:  # a broken report must not hide the run's outcome
            log.warning("HTML report of run %s failed: %s", run.id, exc)
    outputs = folder.publish(
        run_name,
        {"notebook": out_nb, "html": out_html, "metrics": out_metrics, "kernel_log": out_log},
    )
    version_id = metrics.get("version_id")
    rec = table.update_run(
        run.id,
        status=status,
        ended_at=utcnow(),
        duration_s=round(duration, 3),
        snapshot=metrics.get("snapshot"),
        model_version_id=int(version_id) if isinstance(version_id, int) else None,
        error_cell=cell,
        error_name=ename,
        error_message=message,
        outputs=outputs,
        metrics={k: v for k, v in metrics.items() if k != "candidate"} | _short(metrics),
    )
    if status != "succeeded" and alert:
        _alert(store, rec, who)
    return RunResult(rec)


def _short(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The candidate's hold-out and train metrics without residual series or optimizer."""
    cand = metrics.get("candidate")
    if not isinstance(cand, dict):
        return {}
    return {"candidate": {k: cand.get(k) for k in ("params", "train", "holdout", "accepted")}}


def _alert(store: Store, rec: RunRecord, actor: str) -> None:
    """Raise an alert event for a failed run on its dataset (logged when it has none)."""
    from stream0d_nb.alerts.service import AlertService

    where = f" in cell {rec.error_cell}" if rec.error_cell is not None else ""
    msg = (
        f"recalibration run {rec.id} ({Path(rec.notebook).name}) {rec.status}{where}: "
        f"{rec.error_name or ''}: {rec.error_message or ''}"
    )
    if rec.dataset is None:
        log.error("%s", msg)
        return
    try:
        AlertService(store).raise_event(
            rec.dataset,
            ALERT_NAME,
            msg,
            severity="major",
            series=Path(rec.notebook).stem,
            detail={"run": rec.id, "status": rec.status, "outputs": rec.outputs},
            at=rec.ended_at,
        )
    except Exception as exc:  # the run is recorded; say that its alert could not be
        log.error("could not raise the alert of run %s: %s (%s)", rec.id, exc, msg)


def finite_or_none(x: float | None) -> float | None:
    """JSON has no NaN: None instead."""
    return None if x is None or not math.isfinite(x) else float(x)


def when(ts: datetime | None) -> str:
    """A run time for tables."""
    return "" if ts is None else f"{ts:%Y-%m-%d %H:%M:%S}"
