"""Routing: which sinks a dataset's notifications go to, by severity and labels.

A simplified Grafana notification policy: an ordered list of ``Route``; the first route
that matches decides, unless it says ``continue`` (then later routes may add sinks).
Nothing matched: ``default_sinks``. A matching route with no sinks drops the notification.

Labels seen by a route are the notification's labels plus ``dataset``, ``rule``,
``series``, ``severity`` and ``state`` (these win over labels of the same name); a label
that is absent matches as ``""``. Validate sink names with
``RoutingTable.model_validate(data, context={"sink_names": {...}})`` or ``check_sinks``.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, Self

import pydantic
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from stream0d_nb.alerts.sinks import SEVERITY_RANK, Notification, Severity, validation_message
from stream0d_nb.errors import ValidationError

MAX_REGEX = 500


def route_labels(notification: Notification) -> dict[str, str]:
    """The labels a route matches against (notification labels plus built-in ones)."""
    return {
        **notification.labels,
        "dataset": notification.dataset,
        "rule": notification.rule,
        "series": notification.series,
        "severity": notification.severity,
        "state": notification.state,
    }


class Route(BaseModel):
    """One policy: conditions (all must hold) and the sinks to notify when they do.

    ``match_labels`` values are exact; ``match_labels_regex`` values are regular
    expressions matched against the whole label value (``re.fullmatch``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    match_severity: list[Severity] | None = Field(None, description="Any of these severities.")
    min_severity: Severity | None = Field(None, description="This severity or a worse one.")
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_labels_regex: dict[str, str] = Field(default_factory=dict)
    sinks: list[str] = Field(default_factory=list, description="Sink names; [] drops.")
    continue_: bool = Field(False, alias="continue", description="Keep matching later routes.")

    @field_validator("match_labels_regex")
    @classmethod
    def _regex_ok(cls, v: dict[str, str]) -> dict[str, str]:
        for label, pattern in v.items():
            if len(pattern) > MAX_REGEX:
                raise ValueError(f"regex for label {label!r} is longer than {MAX_REGEX}")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"regex {pattern!r} for label {label!r}: {exc}") from None
        return v

    @field_validator("sinks")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dupes = sorted({s for s in v if v.count(s) > 1})
        if dupes:
            raise ValueError(f"sinks listed twice: {dupes}")
        return v

    def matches(self, notification: Notification) -> bool:
        """Whether every condition of this route holds for ``notification``."""
        sev = notification.severity
        if self.match_severity is not None and sev not in self.match_severity:
            return False
        if self.min_severity is not None and SEVERITY_RANK[sev] > SEVERITY_RANK[self.min_severity]:
            return False
        labels = route_labels(notification)
        if any(labels.get(k, "") != v for k, v in self.match_labels.items()):
            return False
        return all(
            re.fullmatch(p, labels.get(k, "")) is not None
            for k, p in self.match_labels_regex.items()
        )


class RoutingTable(BaseModel):
    """Ordered routes plus the sinks used when none matches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routes: list[Route] = Field(default_factory=list)
    default_sinks: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_sinks(self, info: ValidationInfo) -> Self:
        names = (info.context or {}).get("sink_names") if info else None
        if names is not None:
            self.check_sinks(names)
        return self

    def sink_names(self) -> list[str]:
        """Every sink name the table refers to, in order of first mention."""
        out: dict[str, None] = {}
        for route in self.routes:
            out |= dict.fromkeys(route.sinks)
        out |= dict.fromkeys(self.default_sinks)
        return list(out)

    def check_sinks(self, known: Collection[str]) -> None:
        """Raise ``ValidationError`` naming every unknown sink and where it is used."""
        problems = [
            f"route {i + 1}: unknown sink {name!r}"
            for i, route in enumerate(self.routes)
            for name in route.sinks
            if name not in known
        ]
        problems += [
            f"default_sinks: unknown sink {n!r}" for n in self.default_sinks if n not in known
        ]
        if problems:
            have = ", ".join(sorted(known)) or "none"
            raise ValidationError(
                "routing refers to sinks that do not exist (known: " + have + "):\n  "
                + "\n  ".join(problems)
            )  # fmt: skip

    def matching_routes(self, notification: Notification) -> list[int]:
        """Indexes (0-based) of the routes that apply, honouring first-match and continue."""
        out = []
        for i, route in enumerate(self.routes):
            if route.matches(notification):
                out.append(i)
                if not route.continue_:
                    break
        return out

    def sinks_for(self, notification: Notification) -> list[str]:
        """Names of the sinks to notify, without duplicates, in route order."""
        matched = self.matching_routes(notification)
        if not matched:
            return list(self.default_sinks)
        out: dict[str, None] = {}
        for i in matched:
            out |= dict.fromkeys(self.routes[i].sinks)
        return list(out)

    @classmethod
    def everything_to(cls, sinks: Collection[str]) -> RoutingTable:
        """A table that sends every notification to ``sinks``."""
        return cls(default_sinks=list(sinks))

    @classmethod
    def parse(cls, data: Any, sink_names: Collection[str] | None = None) -> RoutingTable:
        """Validate stored or user data; with ``sink_names`` unknown sinks are refused."""
        try:
            table = cls.model_validate(data)
        except pydantic.ValidationError as exc:
            raise ValidationError(validation_message(exc, "routing table is not valid")) from None
        if sink_names is not None:
            table.check_sinks(sink_names)
        return table
