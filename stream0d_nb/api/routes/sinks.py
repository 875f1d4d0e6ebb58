"""Notification sinks (hub admins) and a dataset's alert routes (its owners).

Sinks are shared by every dataset, so only hub admins acting with an admin-level,
unrestricted credential list, save or remove them. Their secrets (passwords, webhook
secrets and headers) are never returned: answers carry them masked. Settings that name
files on the platform's machine (a log sink's ``path``, a ``ca_file``) are refused here:
people's credentials must not make the platform write or read its own files; an operator
sets them with the CLI, as the platform account. Routes say which sinks a dataset's
alerts go to, by severity and labels; its owners set them.

Deliveries (which notification went to which sink, and why one failed) of a dataset's
alerts are shown to its owners, who choose its routes and act on failures (as routes,
they say where its alerts go, so editors and viewers do not see them); every dataset's to
hub admins. Their error texts come from the sinks, which already hide a webhook URL's path
and query; every stored secret and file path of the platform is masked in them as well.
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response

from stream0d_nb.access import AccessDeniedError, Action, Identity, Level, max_level
from stream0d_nb.alerts.routing import RoutingTable
from stream0d_nb.alerts.sinks import sink_from_config
from stream0d_nb.api.deps import AlertsDep, DatasetContext, IdentityDep, require
from stream0d_nb.errors import DatasetExistsError, ValidationError
from stream0d_nb.records import AlertDelivery, AlertRoutes, AttrView, SinkRecord
from stream0d_nb.specs import check_slug

router = APIRouter(tags=["alerts"])

BUILT_IN = {"in-app": "log"}
"""Sinks every platform has (not stored, not removable)."""
SERVER_FILES = ("path", "ca_file")
"""Sink settings naming files on the platform's machine: CLI only."""


def hub_admin(identity: IdentityDep) -> Identity:
    """The caller, if a hub admin acting with an admin-level credential limited to nothing."""
    token = identity.token
    restricted = token is not None and (
        token.level is not Level.ADMIN or token.partner is not None or token.datasets is not None
    )
    if not identity.is_admin or max_level(identity) is not Level.ADMIN or restricted:
        raise AccessDeniedError(
            "notification sinks are managed by hub admins with an admin-level credential "
            "not limited to a partner or datasets"
        )
    return identity


Admin = Annotated[Identity, Depends(hub_admin)]
Owner = Annotated[DatasetContext, Depends(require(Action.MANAGE_ALERT_ROUTES))]


def _masked(name: str, kind: str, config: dict[str, Any]) -> SinkRecord:
    """A sink with its settings, every secret masked (``**********``): dumped to JSON by
    its kind's config model, which masks them."""
    sink = sink_from_config({**config, "name": name, "kind": kind})
    return SinkRecord.model_validate(sink.config.model_dump(mode="json"))


@router.get("/alerts/sinks")
def list_sinks(admin: Admin, alerts: AlertsDep) -> list[SinkRecord]:
    """Every sink with its kind and masked settings (plus the built-in ``in-app``)."""
    stored = [_masked(n, kind, cfg) for n, (kind, cfg) in sorted(alerts.table.sinks().items())]
    built_in = [SinkRecord(name=n, kind=k, built_in=True) for n, k in BUILT_IN.items()]
    return [*stored, *built_in]


@router.put("/alerts/sinks/{name}")
def save_sink(
    name: str,
    admin: Admin,
    alerts: AlertsDep,
    body: Annotated[dict[str, Any], Body(examples=[{"kind": "webhook", "url": "https://..."}])],
) -> SinkRecord:
    """Add or replace a sink: ``kind`` and that kind's settings (validated); answers them
    masked."""
    check_slug(name, "sink name")
    if name in BUILT_IN:
        raise ValidationError(f"sink {name!r} is built in and cannot be replaced")
    files = [k for k in SERVER_FILES if body.get(k) is not None]
    if files:
        raise ValidationError(
            f"sink {name!r}: {', '.join(files)} name files on the platform's machine and "
            "cannot be set through the API; an operator sets them with `stream0d alerts sink`"
        )
    kind = body.get("kind")
    sink = sink_from_config({**body, "name": name})  # validates every setting
    config = sink.config.dump_with_secrets() | {"kind": kind}
    alerts.table.save_sink(name, str(kind), config, admin.user)
    return _masked(name, str(kind), config)


@router.delete("/alerts/sinks/{name}", status_code=204)
def delete_sink(name: str, admin: Admin, alerts: AlertsDep) -> Response:
    """Remove a sink no routing table names any more (audited); else 409."""
    users = alerts.table.routes_using(name)
    if users:
        raise DatasetExistsError(  # 409: the sink is in use
            f"sink {name!r} is named by the alert routes of {', '.join(users)}: "
            "change those routes first"
        )
    alerts.table.delete_sink(name, admin.user)
    return Response(status_code=204)


@router.get("/datasets/{dataset_id}/alerts/routes")
def get_routes(ctx: Owner, alerts: AlertsDep) -> AlertRoutes:
    """Which sinks the dataset's alerts go to (default: the in-app list)."""
    table = alerts.table.routes(ctx.id) or {"default_sinks": ["in-app"]}
    return AlertRoutes.model_validate(table)


@router.put("/datasets/{dataset_id}/alerts/routes")
def set_routes(ctx: Owner, alerts: AlertsDep, body: dict[str, Any]) -> AlertRoutes:
    """Replace the dataset's routing table (sinks named must exist; audited)."""
    names = [*alerts.table.sinks(), *BUILT_IN]
    table = RoutingTable.parse(body, sink_names=names)
    alerts.table.set_routes(ctx.id, table.model_dump(mode="json", by_alias=True), ctx.identity.user)
    return AlertRoutes.model_validate(alerts.table.routes(ctx.id) or {})


MASK = "**********"
Limit = Annotated[int, Query(ge=1, le=10_000, description="Newest deliveries returned.")]
Failed = Annotated[bool, Query(description="Only failed deliveries.")]


def _hidden(alerts: Any) -> list[str]:
    """Texts no delivery may show: every sink's secrets (as stored, in clear), the path
    and query of webhook URLs (chat webhooks put tokens there) and the platform's file
    paths (a log sink's ``path``, ``ca_file``), longest first."""
    configs = [alerts.in_app.config] + [
        sink_from_config({**cfg, "name": name, "kind": kind}).config
        for name, (kind, cfg) in alerts.table.sinks().items()
    ]
    found: set[str] = set()
    for config in configs:
        clear = config.dump_with_secrets()
        shown = config.model_dump(mode="json", by_alias=True)
        found |= set(_changed(clear, shown))
        found |= {str(clear[k]) for k in SERVER_FILES if clear.get(k) is not None}
        url = clear.get("url")
        if isinstance(url, str):
            parts = urllib.parse.urlsplit(url)
            found |= {url, parts.path + ("?" + parts.query if parts.query else "")}
    return sorted((t for t in found if t.strip("/")), key=len, reverse=True)


def _changed(clear: Any, shown: Any) -> list[str]:
    """The values of ``clear`` that ``shown`` masks (secrets), recursively."""
    if isinstance(clear, dict) and isinstance(shown, dict):
        return [v for k in clear for v in _changed(clear[k], shown.get(k))]
    if isinstance(clear, list) and isinstance(shown, list):
        return [v for c, m in zip(clear, shown, strict=False) for v in _changed(c, m)]
    return [str(clear)] if clear != shown and clear not in (None, "") else []


def _deliveries(
    alerts: Any, dataset_id: str | None, failed: bool, limit: int
) -> list[AlertDelivery]:
    hidden = _hidden(alerts)

    def masked(error: str | None) -> str | None:
        for text in hidden if error else ():
            error = str(error).replace(text, MASK)
        return error

    return [
        AlertDelivery.model_validate(AttrView(d, error=masked(d.error)))
        for d in alerts.table.deliveries(dataset_id, failed, limit)
    ]


@router.get("/datasets/{dataset_id}/alerts/deliveries")
def dataset_deliveries(
    ctx: Owner, alerts: AlertsDep, failed: Failed = False, limit: Limit = 50
) -> list[AlertDelivery]:
    """Notifications of the dataset's alerts sent to its sinks and their failures, newest
    first (owner, as its routes)."""
    return _deliveries(alerts, ctx.id, failed, limit)


@router.get("/alerts/deliveries")
def all_deliveries(
    admin: Admin,
    alerts: AlertsDep,
    dataset: Annotated[str | None, Query(description="Only this dataset's.")] = None,
    failed: Failed = False,
    limit: Limit = 50,
) -> list[AlertDelivery]:
    """Deliveries of every dataset's notifications and their failures, newest first (hub
    admins, as sinks)."""
    return _deliveries(alerts, dataset, failed, limit)
