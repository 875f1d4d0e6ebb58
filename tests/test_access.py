"""The pure access model: roles x actions x scopes x filters x grants x token restrictions."""

from __future__ import annotations

import itertools

import pytest

from stream0d_nb.access import (
    AccessDeniedError,
    Action,
    DatasetHiddenError,
    DatasetRef,
    Grant,
    Identity,
    Level,
    PrincipalKind,
    Role,
    ScopeGrant,
    TokenRestriction,
    actions_for,
    can,
    check,
    check_create,
    check_token_request,
    effective_role,
    max_level,
    not_found_message,
    parse_scope,
    parse_scopes,
    visible_datasets,
)
from stream0d_nb.errors import DatasetNotFoundError, Stream0dError
from stream0d_nb.specs import DatasetSpec

READ, WRITE, ADMIN = (f"custom:stream0d:{x}" for x in ("read", "write", "admin"))
V, E, OW = Role.VIEWER, Role.EDITOR, Role.OWNER

A1 = DatasetRef("a1", "acme")
A2 = DatasetRef("a2", "acme")
B1 = DatasetRef("b1", "bolt")
B2 = DatasetRef("b2", "bolt")
N1 = DatasetRef("n1", "")
DATASETS = {d.id: d for d in (A1, A2, B1, B2, N1)}


def g(dataset: str, kind: str, principal: str, role: Role) -> Grant:
    """A grant, tersely."""
    return Grant(dataset=dataset, kind=PrincipalKind(kind), principal=principal, role=role)


GRANTS = [
    g("b1", "group", "acme", V),  # bolt shares b1 with all of acme for reading
    g("b1", "user", "carol", E),  # and lets carol (no partner) edit it
    g("b2", "group", "acme", V),
    g("b2", "user", "alice", E),  # alice: group viewer + user editor -> editor
    g("n1", "group", "bolt", V),  # a dataset of no partner, shared with bolt
]

USERS = {
    "alice": Identity("alice", frozenset({"acme"})),
    "dan": Identity("dan", frozenset({"acme"})),
    "bob": Identity("bob", frozenset({"bolt"})),
    "carol": Identity("carol"),
    "eve": Identity("eve"),  # a stranger: no partner, no grants
    "root": Identity("root", is_admin=True),
}


def who(user: str, *scopes: str, token: TokenRestriction | None = None) -> Identity:
    """The user of ``USERS`` with these scopes (and token)."""
    base = USERS[user]
    return Identity(base.user, base.groups, base.is_admin, frozenset(scopes), token)


# ----------------------------------------------------------------------------- the table

# (user, scopes, dataset, expected effective role)
TABLE: list[tuple[str, tuple[str, ...], str, Role | None]] = [
    # owner partner default, capped by the scope level
    ("alice", (ADMIN,), "a1", OW),
    ("alice", (WRITE,), "a1", E),
    ("alice", (READ,), "a1", V),
    ("alice", (), "a1", None),
    ("alice", (READ, WRITE), "a1", E),
    ("alice", (READ, ADMIN, WRITE), "a1", OW),
    # !group= filters: on the dataset's owner partner only
    ("alice", (ADMIN + "!group=acme",), "a1", OW),
    ("alice", (ADMIN + "!group=bolt",), "a1", None),
    ("alice", (READ, WRITE + "!group=acme"), "a1", E),
    ("alice", (ADMIN + "!group=bolt", READ), "a1", V),
    ("alice", (ADMIN + "!group=acme",), "b1", None),
    ("alice", (READ + "!group=bolt",), "b1", V),
    # !user= naming oneself is unfiltered; naming someone else grants nothing
    ("alice", (ADMIN + "!user=alice",), "a1", OW),
    ("alice", (ADMIN + "!user=bob",), "a1", None),
    # scopes we do not understand are ignored, never widened
    ("alice", ("custom:stream0d:READ",), "a1", None),
    ("alice", ("custom:stream0d:delete",), "a1", None),
    ("alice", (READ + "!dataset=a1",), "a1", None),
    ("alice", (READ + "!group=",), "a1", None),
    ("alice", (READ + "!server=alice/x",), "a1", None),
    ("alice", ("read:users", "admin:users", "custom:other:admin"), "a1", None),
    ("alice", ("custom:stream0d:read:extra",), "a1", None),
    # group and user grants (the best one wins), capped by scopes
    ("alice", (ADMIN,), "b1", V),
    ("dan", (ADMIN,), "b1", V),
    ("alice", (ADMIN,), "b2", E),
    ("alice", (READ,), "b2", V),
    ("dan", (ADMIN,), "b2", V),
    ("carol", (ADMIN,), "b1", E),
    ("carol", (READ,), "b1", V),
    ("carol", (ADMIN,), "a1", None),
    ("carol", (ADMIN,), "b2", None),
    # the other partner sees nothing not shared with it
    ("bob", (ADMIN,), "a1", None),
    ("bob", (ADMIN,), "a2", None),
    ("bob", (ADMIN,), "b1", OW),
    ("bob", (WRITE,), "b2", E),
    ("bob", (ADMIN,), "n1", V),
    ("alice", (ADMIN,), "n1", None),
    # a stranger sees nothing at all
    *[("eve", (ADMIN,), d, None) for d in DATASETS],
    # hub admins see everything, still within their scopes
    *[("root", (ADMIN,), d, OW) for d in DATASETS],
    ("root", (READ,), "b1", V),
    ("root", (READ + "!group=acme",), "b1", None),
    ("root", (), "a1", None),
]


@pytest.mark.parametrize(("user", "scopes", "dataset", "expected"), TABLE)
def test_effective_role(
    user: str, scopes: tuple[str, ...], dataset: str, expected: Role | None
) -> None:
    identity = who(user, *scopes)
    assert effective_role(identity, DATASETS[dataset], GRANTS) == expected


@pytest.mark.parametrize(("user", "scopes", "dataset", "expected"), TABLE)
@pytest.mark.parametrize("action", list(Action))
def test_check_every_action(
    user: str, scopes: tuple[str, ...], dataset: str, expected: Role | None, action: Action
) -> None:
    """Hidden -> not found; visible but too low -> denied; otherwise the role comes back."""
    identity, ds = who(user, *scopes), DATASETS[dataset]
    allowed = expected is not None and action in actions_for(expected)
    assert can(identity, ds, action, GRANTS) is allowed
    if expected is None:
        with pytest.raises(DatasetHiddenError) as info:
            check(identity, ds, action, GRANTS)
        assert str(info.value) == not_found_message(dataset)
    elif allowed:
        assert check(identity, ds, action, GRANTS) == expected
    else:
        with pytest.raises(AccessDeniedError, match=action.role.value):
            check(identity, ds, action, GRANTS)


# ----------------------------------------------------------------------------- tokens

# (user, scopes, token restriction, dataset, expected)
TOKEN_TABLE: list[tuple[str, tuple[str, ...], TokenRestriction, str, Role | None]] = [
    ("alice", (ADMIN,), TokenRestriction(Level.READ), "a1", V),
    ("alice", (ADMIN,), TokenRestriction(Level.WRITE), "a1", E),
    ("alice", (ADMIN,), TokenRestriction(Level.ADMIN), "a1", OW),
    # the token never exceeds the scopes nor the grants
    ("alice", (READ,), TokenRestriction(Level.ADMIN), "a1", V),
    ("alice", (ADMIN,), TokenRestriction(Level.ADMIN), "b1", V),
    ("alice", (ADMIN,), TokenRestriction(Level.ADMIN), "b2", E),
    ("bob", (ADMIN,), TokenRestriction(Level.ADMIN), "a1", None),
    ("eve", (ADMIN,), TokenRestriction(Level.ADMIN), "a1", None),
    ("alice", (), TokenRestriction(Level.ADMIN), "a1", None),
    # partner restriction
    ("alice", (ADMIN,), TokenRestriction(Level.ADMIN, partner="bolt"), "a1", None),
    ("alice", (ADMIN,), TokenRestriction(Level.ADMIN, partner="bolt"), "b1", V),
    ("alice", (ADMIN,), TokenRestriction(Level.ADMIN, partner="acme"), "a2", OW),
    # dataset restriction
    ("alice", (ADMIN,), TokenRestriction(Level.WRITE, datasets=frozenset({"a1"})), "a1", E),
    ("alice", (ADMIN,), TokenRestriction(Level.WRITE, datasets=frozenset({"a1"})), "a2", None),
    ("alice", (ADMIN,), TokenRestriction(Level.ADMIN, datasets=frozenset()), "a1", None),
    (
        "alice",
        (ADMIN,),
        TokenRestriction(Level.ADMIN, partner="acme", datasets=frozenset({"b1"})),
        "b1",
        None,
    ),
    # admins too
    ("root", (ADMIN,), TokenRestriction(Level.READ), "b2", V),
    ("root", (ADMIN,), TokenRestriction(Level.ADMIN, partner="bolt"), "a1", None),
]


@pytest.mark.parametrize(("user", "scopes", "token", "dataset", "expected"), TOKEN_TABLE)
def test_token_restrictions(
    user: str,
    scopes: tuple[str, ...],
    token: TokenRestriction,
    dataset: str,
    expected: Role | None,
) -> None:
    identity = who(user, *scopes, token=token)
    assert effective_role(identity, DATASETS[dataset], GRANTS) == expected


def _rank(role: Role | None) -> int:
    return 0 if role is None else role.rank


SCOPE_SETS: list[tuple[str, ...]] = [
    (),
    (READ,),
    (WRITE,),
    (ADMIN,),
    (ADMIN + "!group=acme",),
    (WRITE + "!group=bolt", READ),
]
RESTRICTIONS = [
    TokenRestriction(level, partner, datasets)
    for level in Level
    for partner in (None, "acme", "bolt", "")
    for datasets in (None, frozenset({"a1", "b1"}), frozenset({"n1"}))
]


def test_a_token_never_exceeds_its_owner() -> None:
    """Exhaustively: with any token, never more than the same user and scopes without one."""
    checked = 0
    for user, scopes, ds, token in itertools.product(
        USERS, SCOPE_SETS, DATASETS.values(), RESTRICTIONS
    ):
        without = effective_role(who(user, *scopes), ds, GRANTS)
        with_token = effective_role(who(user, *scopes, token=token), ds, GRANTS)
        assert _rank(with_token) <= _rank(without), (user, scopes, ds, token)
        assert _rank(with_token) <= token.level.role.rank
        checked += 1
    assert checked == len(USERS) * len(SCOPE_SETS) * len(DATASETS) * len(RESTRICTIONS)


def test_more_grants_or_scopes_never_lower_a_role() -> None:
    """Monotonic: adding a grant or a scope can only raise the effective role."""
    extra = g("a1", "user", "bob", E)
    for user, scopes, ds in itertools.product(USERS, SCOPE_SETS, DATASETS.values()):
        base = effective_role(who(user, *scopes), ds, GRANTS)
        assert _rank(effective_role(who(user, *scopes), ds, [*GRANTS, extra])) >= _rank(base)
        assert _rank(effective_role(who(user, *scopes, READ), ds, GRANTS)) >= _rank(base)


# ----------------------------------------------------------------------------- roles, actions


def test_roles_are_ordered() -> None:
    assert V < E < OW
    assert OW > E > V
    assert V <= V and OW >= OW
    assert max(V, OW, E) == OW and min(OW, E, V) == V
    assert sorted([OW, V, E]) == [V, E, OW]
    assert Role("editor") is E


def test_actions_per_role_as_specified() -> None:
    viewer = {Action.READ, Action.PLOT, Action.VIEW_ALERTS, Action.VIEW_RUNS}
    editor = viewer | {
        Action.INGEST,
        Action.EDIT_FORMULAS,
        Action.EDIT_ALERT_RULES,
        Action.EDIT_VIEWS,
        Action.RECALIBRATE,
        Action.UPDATE,
    }
    owner = editor | {
        Action.MANAGE_GRANTS,
        Action.MANAGE_ALERT_ROUTES,
        Action.DELETE,
        Action.VIEW_AUDIT,
        Action.TRANSFER,
    }
    assert actions_for(V) == viewer
    assert actions_for(E) == editor
    assert actions_for(OW) == owner == set(Action)
    assert actions_for(None) == frozenset()
    assert {a for a in Action if a.level is Level.READ} == viewer
    assert {a for a in Action if a.level is Level.ADMIN} == owner - editor


# ----------------------------------------------------------------------------- scopes


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (READ, ScopeGrant(Level.READ)),
        (WRITE, ScopeGrant(Level.WRITE)),
        (ADMIN, ScopeGrant(Level.ADMIN)),
        (READ + "!group=acme", ScopeGrant(Level.READ, "acme")),
        (ADMIN + "!user=alice", ScopeGrant(Level.ADMIN)),
        (ADMIN + "!user=bob", None),
        (ADMIN + "!user", None),
        (READ + "!group", None),
        (READ + "!group=", None),
        (READ + "!dataset=a1", None),
        (READ + "!service=x", None),
        ("custom:stream0d:Read", None),
        ("custom:stream0d:", None),
        ("custom:stream0d", None),
        ("custom:stream0dx:read", None),
        ("read:users", None),
        ("", None),
    ],
)
def test_parse_scope(scope: str, expected: ScopeGrant | None) -> None:
    assert parse_scope(scope, "alice") == expected


def test_parse_scopes_keeps_ours_once() -> None:
    got = parse_scopes([READ, READ, "read:users", WRITE + "!group=acme", "junk"])
    assert got == (ScopeGrant(Level.READ), ScopeGrant(Level.WRITE, "acme"))


def test_max_level() -> None:
    assert max_level(who("alice")) is None
    assert max_level(who("alice", READ, "read:users")) is Level.READ
    assert max_level(who("alice", READ, ADMIN + "!group=bolt", WRITE)) is Level.ADMIN


# ----------------------------------------------------------------------------- listing, errors


def test_visible_datasets_per_identity() -> None:
    order = list(DATASETS.values())

    def ids(identity: Identity) -> list[str]:
        return [d.id for d in visible_datasets(identity, order, GRANTS)]

    assert ids(who("alice", READ)) == ["a1", "a2", "b1", "b2"]
    assert ids(who("bob", READ)) == ["b1", "b2", "n1"]
    assert ids(who("carol", READ)) == ["b1"]
    assert ids(who("eve", ADMIN)) == []
    assert ids(who("root", READ)) == ["a1", "a2", "b1", "b2", "n1"]
    assert ids(who("alice", READ + "!group=bolt")) == ["b1", "b2"]
    assert ids(who("alice", ADMIN, token=TokenRestriction(Level.READ, "acme"))) == ["a1", "a2"]
    assert ids(who("alice")) == []


def test_datasets_may_be_specs_or_records() -> None:
    """Specs and anything with ``.spec`` (registry records) work like refs."""
    spec = DatasetSpec(id="a9", interval="1s", partner="acme")

    class Record:
        def __init__(self, spec: DatasetSpec) -> None:
            self.spec = spec

    alice = who("alice", WRITE)
    assert effective_role(alice, spec) == E
    assert effective_role(alice, Record(spec)) == E
    assert visible_datasets(alice, [spec]) == [spec]
    assert effective_role(who("bob", ADMIN), spec) is None


def test_errors_map_to_builtins() -> None:
    with pytest.raises(DatasetHiddenError) as hidden:
        check(who("bob", ADMIN), A1, Action.READ, GRANTS)
    assert isinstance(hidden.value, DatasetNotFoundError)
    assert isinstance(hidden.value, LookupError)
    assert isinstance(hidden.value, Stream0dError)
    # nothing in the message tells the partner, the grants or that it exists
    assert "acme" not in str(hidden.value)
    with pytest.raises(AccessDeniedError) as denied:
        check(who("alice", READ), A1, Action.INGEST, GRANTS)
    assert isinstance(denied.value, PermissionError)
    assert isinstance(denied.value, Stream0dError)


def test_audit_channel_names_the_token() -> None:
    assert who("alice").via == "hub"
    assert who("alice", token=TokenRestriction(Level.READ, token_id="ab12")).via == "token:ab12"


# ----------------------------------------------------------------------------- create, issue


@pytest.mark.parametrize(
    ("user", "scopes", "token", "partner", "ok"),
    [
        ("alice", (WRITE,), None, "acme", True),
        ("alice", (ADMIN + "!group=acme",), None, "acme", True),
        ("alice", (READ,), None, "acme", False),
        ("alice", (WRITE + "!group=bolt",), None, "acme", False),
        ("alice", (WRITE,), None, "bolt", False),
        ("alice", (WRITE,), None, "", False),
        ("carol", (ADMIN,), None, "bolt", False),
        ("root", (WRITE,), None, "bolt", True),
        ("root", (WRITE,), None, "", True),
        ("root", (READ,), None, "", False),
        ("alice", (ADMIN,), TokenRestriction(Level.WRITE), "acme", True),
        ("alice", (ADMIN,), TokenRestriction(Level.READ), "acme", False),
        ("alice", (ADMIN,), TokenRestriction(Level.ADMIN, partner="bolt"), "acme", False),
        (
            "alice",
            (ADMIN,),
            TokenRestriction(Level.ADMIN, datasets=frozenset({"a1"})),
            "acme",
            False,
        ),
    ],
)
def test_check_create(
    user: str, scopes: tuple[str, ...], token: TokenRestriction | None, partner: str, ok: bool
) -> None:
    identity = who(user, *scopes, token=token)
    new = DatasetRef("new", partner)
    if ok:
        check_create(identity, new)
    else:
        with pytest.raises(AccessDeniedError):
            check_create(identity, new)


def test_token_request_within_own_level_from_a_session_only() -> None:
    check_token_request(who("alice", WRITE), Level.READ)
    check_token_request(who("alice", WRITE), Level.WRITE)
    check_token_request(who("alice", ADMIN + "!group=acme"), Level.ADMIN)
    with pytest.raises(AccessDeniedError, match="write"):
        check_token_request(who("alice", WRITE), Level.ADMIN)
    with pytest.raises(AccessDeniedError, match="none"):
        check_token_request(who("alice"), Level.READ)
    with pytest.raises(AccessDeniedError, match="browser session"):
        check_token_request(who("alice", ADMIN, token=TokenRestriction(Level.ADMIN)), Level.READ)
