"""Who may do what on which dataset: roles, actions, hub scopes, grants (pure, no I/O).

The hub says who someone is (user, partner groups, admin flag) and which
``custom:stream0d:read|write|admin`` scopes their session or hub token carries; grants
(viewer < editor < owner, to a partner group or a user) say on which datasets. A
dataset's owner partner is owner by default and hub admins are owner everywhere. The
effective role is the *minimum* of what the user's grants give and what the token
allows (its scopes, and for our own API tokens their level, partner and dataset
restriction), so a token never exceeds its owner's rights.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from stream0d_nb.errors import DatasetNotFoundError, Stream0dError, ValidationError
from stream0d_nb.specs import DatasetSpec

__all__ = [
    "SCOPE_PREFIX",
    "AccessDeniedError",
    "Action",
    "DatasetHiddenError",
    "DatasetRef",
    "Grant",
    "Identity",
    "InvalidTokenError",
    "Level",
    "PrincipalKind",
    "Role",
    "ScopeGrant",
    "TokenExpiredError",
    "TokenNotFoundError",
    "TokenRestriction",
    "TokenRevokedError",
    "TokenUnknownError",
    "actions_for",
    "can",
    "check",
    "check_create",
    "check_token_request",
    "effective_role",
    "max_level",
    "not_found_message",
    "parse_scope",
    "parse_scopes",
    "visible_datasets",
]

SCOPE_PREFIX = "custom:stream0d:"

# ----------------------------------------------------------------------------- errors


class AccessDeniedError(Stream0dError, PermissionError):
    """The identity may see the dataset but not do this (HTTP 403)."""


class DatasetHiddenError(DatasetNotFoundError):
    """The identity may not even see the dataset: reported exactly like a missing one (404)."""


class InvalidTokenError(Stream0dError, PermissionError):
    """An API token that cannot be used (HTTP 401); subclasses say why."""


class TokenUnknownError(InvalidTokenError):
    """Malformed, unknown id or wrong secret (one error, so nothing leaks about which)."""


class TokenRevokedError(InvalidTokenError):
    """The token was revoked (said only to a caller holding its real secret)."""


class TokenExpiredError(InvalidTokenError):
    """The token is past its expiry (said only to a caller holding its real secret)."""


class TokenNotFoundError(Stream0dError, LookupError):
    """No token of that id among those the caller may manage."""


def not_found_message(dataset_id: str) -> str:
    """The one message for a missing and a hidden dataset (same as the registry's)."""
    return f"no dataset {dataset_id!r} in the registry"


# ----------------------------------------------------------------------------- roles


_RANK = {"viewer": 1, "editor": 2, "owner": 3}


class Role(StrEnum):
    """A per-dataset role, ordered viewer < editor < owner (stored by its name)."""

    VIEWER = "viewer"
    EDITOR = "editor"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        """1, 2, 3: the order of the roles."""
        return _RANK[self.value]

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank >= other.rank


class Level(StrEnum):
    """What kind of action a scope or token allows: read < write < admin."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def role(self) -> Role:
        """The highest role this level lets one act with (read -> viewer ...)."""
        return _LEVEL_ROLE[self]

    @property
    def scope(self) -> str:
        """The unfiltered hub scope, e.g. ``custom:stream0d:read``."""
        return SCOPE_PREFIX + self.value


_LEVEL_ROLE = {Level.READ: Role.VIEWER, Level.WRITE: Role.EDITOR, Level.ADMIN: Role.OWNER}


class Action(StrEnum):
    """Everything that is checked on a dataset; ``role`` is the least role allowing it."""

    READ = "read"  # data, channels, metadata, exports, history
    PLOT = "plot"
    VIEW_ALERTS = "alerts.view"  # rules, events, silences
    VIEW_RUNS = "runs.view"
    UPDATE = "update"  # title, description (not the partner: that is TRANSFER)
    INGEST = "ingest"
    EDIT_FORMULAS = "formulas.edit"
    EDIT_ALERT_RULES = "alerts.edit"
    EDIT_VIEWS = "views.edit"  # saved views (reading them is PLOT)
    RECALIBRATE = "recal.edit"  # models, notebook runs, schedules (reading them: READ/VIEW_RUNS)
    MANAGE_GRANTS = "grants.manage"
    MANAGE_ALERT_ROUTES = "alerts.routes"  # which notification sinks alerts go to
    VIEW_AUDIT = "audit.view"
    TRANSFER = "transfer"  # change the owner partner
    DELETE = "delete"

    @property
    def role(self) -> Role:
        """The least role that allows this action."""
        return _ACTION_ROLE[self]

    @property
    def level(self) -> Level:
        """The least scope/token level that allows this action."""
        return _ROLE_LEVEL[self.role]


_ACTION_ROLE: dict[Action, Role] = {
    Action.READ: Role.VIEWER,
    Action.PLOT: Role.VIEWER,
    Action.VIEW_ALERTS: Role.VIEWER,
    Action.VIEW_RUNS: Role.VIEWER,
    Action.UPDATE: Role.EDITOR,
    Action.INGEST: Role.EDITOR,
    Action.EDIT_FORMULAS: Role.EDITOR,
    Action.EDIT_ALERT_RULES: Role.EDITOR,
    Action.EDIT_VIEWS: Role.EDITOR,
    Action.RECALIBRATE: Role.EDITOR,
    Action.MANAGE_GRANTS: Role.OWNER,
    Action.MANAGE_ALERT_ROUTES: Role.OWNER,
    Action.VIEW_AUDIT: Role.OWNER,
    Action.TRANSFER: Role.OWNER,
    Action.DELETE: Role.OWNER,
}
_ROLE_LEVEL = {role: level for level, role in _LEVEL_ROLE.items()}


def actions_for(role: Role | None) -> frozenset[Action]:
    """Every action ``role`` allows (none for ``None``)."""
    if role is None:
        return frozenset()
    return frozenset(a for a in Action if a.role <= role)


# ----------------------------------------------------------------------------- scopes


@dataclass(frozen=True)
class ScopeGrant:
    """One understood stream0d scope: a level, on every dataset or on one partner's."""

    level: Level
    partner: str | None = None  # None: unfiltered

    def applies_to(self, partner: str) -> bool:
        """Whether this scope covers a dataset owned by ``partner``."""
        return self.partner is None or self.partner == partner


def parse_scope(scope: str, user: str | None = None) -> ScopeGrant | None:
    """``custom:stream0d:<level>[!group=<partner>]`` as a ``ScopeGrant``; None if not ours.

    ``!group=P`` narrows the scope to datasets owned by partner P (JupyterHub keeps the
    filter but does not interpret it on custom scopes). ``!user=<user>`` naming the
    identity itself is the hub's "on my own behalf" and counts as unfiltered. Any other
    filter, level or spelling (the hub lowercases scopes) is ignored: unknown narrows to
    nothing rather than widening to everything.
    """
    name, sep, filt = scope.partition("!")
    if not name.startswith(SCOPE_PREFIX):
        return None
    try:
        level = Level(name[len(SCOPE_PREFIX) :])
    except ValueError:
        return None
    if not sep:
        return ScopeGrant(level)
    key, eq, value = filt.partition("=")
    if not eq or not value:
        return None
    if key == "group":
        return ScopeGrant(level, value)
    if key == "user" and user is not None and value == user:
        return ScopeGrant(level)
    return None


def parse_scopes(scopes: Iterable[str], user: str | None = None) -> tuple[ScopeGrant, ...]:
    """Every stream0d scope understood among ``scopes`` (the others are left out)."""
    found = (parse_scope(s, user) for s in scopes)
    return tuple(sorted({g for g in found if g is not None}, key=_scope_key))


def _scope_key(g: ScopeGrant) -> tuple[str, str]:
    return (g.level.value, g.partner or "")


# ----------------------------------------------------------------------------- identity


@dataclass(frozen=True)
class TokenRestriction:
    """What one of our API tokens (``s0d_...``) narrows its owner's rights to."""

    level: Level
    partner: str | None = None
    datasets: frozenset[str] | None = None  # None: any dataset
    token_id: str | None = None

    def cap(self, dataset: DatasetRef) -> Role | None:
        """The highest role this token allows on ``dataset`` (None: not at all)."""
        if self.partner is not None and dataset.partner != self.partner:
            return None
        if self.datasets is not None and dataset.id not in self.datasets:
            return None
        return self.level.role


@dataclass(frozen=True)
class Identity:
    """Who acts: the hub user (groups = partners, admin flag), their scopes, their token.

    ``scopes`` are those the hub resolved for the request (a session's or hub token's,
    already within the user's); for our own API tokens, the owner's current scopes, with
    ``token`` holding the token's restriction.
    """

    user: str
    groups: frozenset[str] = frozenset()
    is_admin: bool = False
    scopes: frozenset[str] = frozenset()
    token: TokenRestriction | None = None
    channel: str = "hub"  # how a non-API-token caller came in: "session", "hub-token"...
    _parsed: tuple[ScopeGrant, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", frozenset(self.groups))
        object.__setattr__(self, "scopes", frozenset(self.scopes))
        object.__setattr__(self, "_parsed", parse_scopes(self.scopes, self.user))

    @property
    def scope_grants(self) -> tuple[ScopeGrant, ...]:
        """The understood stream0d scopes."""
        return self._parsed

    @property
    def via(self) -> str:
        """What the audit log records as the channel used (token id or session)."""
        if self.token is not None and self.token.token_id:
            return f"token:{self.token.token_id}"
        return self.channel


# ----------------------------------------------------------------------------- datasets and grants


@dataclass(frozen=True)
class DatasetRef:
    """The two facts about a dataset that access depends on."""

    id: str
    partner: str = ""


class _HasSpec(Protocol):
    @property
    def spec(self) -> DatasetSpec: ...


DatasetLike = DatasetRef | DatasetSpec | _HasSpec


def as_ref(dataset: DatasetLike) -> DatasetRef:
    """The ``DatasetRef`` of a ref, a ``DatasetSpec`` or a record with ``.spec``."""
    if isinstance(dataset, DatasetRef):
        return dataset
    spec = dataset if isinstance(dataset, DatasetSpec) else dataset.spec
    return DatasetRef(spec.id, spec.partner)


class PrincipalKind(StrEnum):
    """Whom a grant is to: a partner group or a single user."""

    GROUP = "group"
    USER = "user"


class Grant(BaseModel):
    """A role on a dataset given to a group or a user."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    kind: PrincipalKind
    principal: str
    role: Role


def _user_role(identity: Identity, dataset: DatasetRef, grants: Iterable[Grant]) -> Role | None:
    """What the user's own rights give on ``dataset``, whatever the token."""
    if identity.is_admin:
        return Role.OWNER
    if dataset.partner and dataset.partner in identity.groups:
        return Role.OWNER
    best: Role | None = None
    for g in grants:
        if g.dataset != dataset.id:
            continue
        if (g.kind is PrincipalKind.USER and g.principal == identity.user) or (
            g.kind is PrincipalKind.GROUP and g.principal in identity.groups
        ):
            best = g.role if best is None else max(best, g.role)
    return best


def _token_cap(identity: Identity, dataset: DatasetRef) -> Role | None:
    """The highest role the scopes (and our API token, if any) allow on ``dataset``."""
    cap: Role | None = None
    for g in identity.scope_grants:
        if g.applies_to(dataset.partner):
            cap = g.level.role if cap is None else max(cap, g.level.role)
    if cap is not None and identity.token is not None:
        tcap = identity.token.cap(dataset)
        cap = None if tcap is None else min(cap, tcap)
    return cap


def effective_role(
    identity: Identity, dataset: DatasetLike, grants: Iterable[Grant] = ()
) -> Role | None:
    """The role ``identity`` acts with on ``dataset``: user's rights AND token's; None = hidden."""
    ref = as_ref(dataset)
    user = _user_role(identity, ref, grants)
    if user is None:
        return None
    cap = _token_cap(identity, ref)
    if cap is None:
        return None
    return min(user, cap)


def can(
    identity: Identity, dataset: DatasetLike, action: Action, grants: Iterable[Grant] = ()
) -> bool:
    """Whether ``identity`` may do ``action`` on ``dataset``."""
    role = effective_role(identity, dataset, grants)
    return role is not None and role >= action.role


def check(
    identity: Identity, dataset: DatasetLike, action: Action, grants: Iterable[Grant] = ()
) -> Role:
    """Return the effective role if ``action`` is allowed, else raise.

    ``DatasetHiddenError`` (a ``DatasetNotFoundError``, same message as a missing
    dataset) when the identity may not see the dataset at all, ``AccessDeniedError``
    when it may see it but its role or token level is too low.
    """
    ref = as_ref(dataset)
    role = effective_role(identity, ref, grants)
    if role is None:
        raise DatasetHiddenError(not_found_message(ref.id))
    if role < action.role:
        raise AccessDeniedError(
            f"{identity.user} acts as {role.value} on dataset {ref.id!r} "
            f"(via {identity.via}); {action.value!r} needs {action.role.value}"
        )
    return role


def visible_datasets[D: DatasetLike](
    identity: Identity, datasets: Iterable[D], grants: Iterable[Grant] = ()
) -> list[D]:
    """The datasets ``identity`` may see (any role), in the given order."""
    by_dataset: Mapping[str, list[Grant]] = _index(grants)
    return [
        d
        for d in datasets
        if effective_role(identity, d, by_dataset.get(as_ref(d).id, ())) is not None
    ]


def _index(grants: Iterable[Grant]) -> dict[str, list[Grant]]:
    out: dict[str, list[Grant]] = defaultdict(list)
    for g in grants:
        out[g.dataset].append(g)
    return out


def check_create(identity: Identity, dataset: DatasetLike) -> None:
    """Creating ``dataset`` needs membership of its partner (or admin) and write access.

    ``AccessDeniedError`` otherwise (nothing is hidden: the dataset does not exist yet).
    A dataset without partner can only be created by hub admins.
    """
    ref = as_ref(dataset)
    if not (identity.is_admin or (ref.partner and ref.partner in identity.groups)):
        raise AccessDeniedError(
            f"{identity.user} is not a member of partner {ref.partner!r} "
            f"and may not create its datasets"
        )
    cap = _token_cap(identity, ref)
    if cap is None or cap < Role.EDITOR:
        raise AccessDeniedError(
            f"creating dataset {ref.id!r} needs {Level.WRITE.scope} (via {identity.via})"
        )


def check_namespace(dataset: DatasetLike) -> None:
    """A new dataset's id must lie in its partner's namespace: ``<partner>-<name>``.

    Partner slugs have no '-' (the partners file refuses them), so the partner is the id
    up to its first '-' and no two partners can ever ask for the same id; ids without
    partner (hub admins) have no '-' at all. The answer depends on the text alone, never
    on which ids exist: creating cannot tell a partner whether another partner holds an id.
    """
    ref = as_ref(dataset)
    partner, sep, name = ref.id.partition("-")
    if ref.partner:
        if partner != ref.partner or not sep or not name:
            raise ValidationError(
                f"dataset id {ref.id!r}: ids of partner {ref.partner!r} begin with "
                f"'{ref.partner}-' (e.g. '{ref.partner}-press-2')"
            )
    elif sep:
        raise ValidationError(
            f"dataset id {ref.id!r}: a dataset without partner has an id without '-' "
            "(ids with '-' belong to partners' namespaces)"
        )


def max_level(identity: Identity) -> Level | None:
    """The highest level any of the identity's scopes gives (None: no stream0d scope)."""
    levels = [g.level for g in identity.scope_grants]
    return max(levels, key=lambda lv: lv.role.rank) if levels else None


def check_token_request(identity: Identity, level: Level) -> None:
    """A token may only be issued from a hub session, at most at the user's own level.

    Refused through one of our API tokens; the API layer must also refuse hub-token
    (``Authorization`` header) calls, which this model cannot tell from sessions.
    """
    if identity.token is not None:
        raise AccessDeniedError("tokens can only be created from a hub browser session")
    top = max_level(identity)
    if top is None or top.role < level.role:
        have = top.value if top else "none"
        raise AccessDeniedError(
            f"{identity.user} may not create a {level.value} token (own level: {have})"
        )
