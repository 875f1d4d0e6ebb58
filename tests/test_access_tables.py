"""Grants and API tokens in the registry, on both backends (SQLite file, real PostgreSQL)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from stream0d_nb.access import (
    AccessDeniedError,
    Action,
    DatasetHiddenError,
    Identity,
    InvalidTokenError,
    Level,
    PrincipalKind,
    Role,
    TokenExpiredError,
    TokenNotFoundError,
    TokenRestriction,
    TokenRevokedError,
    TokenUnknownError,
    check,
    effective_role,
    visible_datasets,
)
from stream0d_nb.db.access_tables import (
    AccessRegistry,
    ApiTokenRow,
    GrantNotFoundError,
    GrantRow,
    looks_like_token,
    parse_token,
)
from stream0d_nb.db.base import Base, utcnow
from stream0d_nb.db.registry import Registry
from stream0d_nb.errors import DatasetNotFoundError, ValidationError
from stream0d_nb.specs import DatasetSpec

ADMIN = "custom:stream0d:admin"


@pytest.fixture
def reg(registry_url: str) -> Iterator[Registry]:
    """A registry with datasets a1, a2 (partner acme) and b1 (partner bolt)."""
    registry = Registry(registry_url)
    try:
        for ds, partner in (("a1", "acme"), ("a2", "acme"), ("b1", "bolt")):
            spec = DatasetSpec(id=ds, interval="1s", partner=partner)
            registry.create_dataset(spec, f"mem://{ds}", actor="setup")
        yield registry
    finally:
        registry.close()


@pytest.fixture
def acc(reg: Registry) -> AccessRegistry:
    """The access facade, writing last-used on every verify (to test it)."""
    return AccessRegistry(reg, last_used_granularity=timedelta(0))


def in_days(n: float) -> datetime:
    """A moment ``n`` days from now (UTC)."""
    return utcnow() + timedelta(days=n)


# ----------------------------------------------------------------------------- grants


def test_grant_crud_is_audited(reg: Registry, acc: AccessRegistry) -> None:
    rec = acc.grant("b1", "group", "acme", "viewer", actor="bob", via="hub")
    assert (rec.dataset, rec.kind, rec.principal, rec.role) == (
        "b1",
        PrincipalKind.GROUP,
        "acme",
        Role.VIEWER,
    )
    assert rec.granted_by == "bob" and rec.granted_at.tzinfo is not None
    acc.grant("b1", PrincipalKind.USER, "carol", Role.EDITOR, actor="bob")
    assert acc.grant("b1", "group", "acme", "viewer", actor="bob") == rec  # no change
    changed = acc.grant("b1", "group", "acme", "editor", actor="bob")
    assert changed.role is Role.EDITOR
    assert [(g.kind, g.principal, g.role) for g in acc.list_grants("b1")] == [
        (PrincipalKind.GROUP, "acme", Role.EDITOR),
        (PrincipalKind.USER, "carol", Role.EDITOR),
    ]
    acc.revoke_grant("b1", "user", "carol", actor="bob", via="token:x")
    assert [g.principal for g in acc.list_grants()] == ["acme"]

    log = reg.audit_log("b1", limit=10)
    assert [(e.action, e.actor) for e in log[:4]] == [
        ("grant.remove", "bob"),
        ("grant.add", "bob"),
        ("grant.add", "bob"),
        ("grant.add", "bob"),
    ]
    assert log[0].detail == {"kind": "user", "principal": "carol", "role": "editor"}
    assert log[0].via == "token:x"
    assert log[1].detail == {
        "kind": "group",
        "principal": "acme",
        "role": "editor",
        "from": "viewer",
    }
    assert log[3].via == "hub"
    assert reg.count_audit("b1") == 1 + 4  # dataset.create + the four above


def test_grant_errors(acc: AccessRegistry, reg: Registry) -> None:
    with pytest.raises(DatasetNotFoundError):
        acc.grant("nope", "group", "acme", "viewer", actor="bob")
    with pytest.raises(ValidationError, match="principal kind"):
        acc.grant("b1", "team", "acme", "viewer", actor="bob")
    with pytest.raises(ValidationError, match="role"):
        acc.grant("b1", "group", "acme", "admin", actor="bob")
    with pytest.raises(ValidationError, match="name"):
        acc.grant("b1", "user", "two words", "viewer", actor="bob")
    with pytest.raises(ValidationError, match="name"):
        acc.grant("b1", "user", "", "viewer", actor="bob")
    with pytest.raises(GrantNotFoundError):
        acc.revoke_grant("b1", "group", "acme", actor="bob")
    assert reg.audit_log(action="grant.add") == []


def test_one_grant_per_dataset_and_principal_in_the_database(
    acc: AccessRegistry, reg: Registry
) -> None:
    acc.grant("b1", "group", "acme", "viewer", actor="bob")
    now = utcnow()
    with pytest.raises(IntegrityError), reg.write_session() as s:
        s.add(
            GrantRow(
                dataset_id="b1",
                principal_kind="group",
                principal="acme",
                role="owner",
                granted_at=now,
                granted_by="mallory",
            )
        )
        s.flush()
    assert [g.role for g in acc.list_grants("b1")] == [Role.VIEWER]


def test_grants_go_with_their_dataset(acc: AccessRegistry, reg: Registry) -> None:
    """A re-created dataset of the same id must not inherit the old grants."""
    acc.grant("b1", "group", "acme", "owner", actor="bob")
    reg.delete_dataset("b1", actor="bob")
    assert acc.list_grants() == []
    reg.create_dataset(DatasetSpec(id="b1", interval="1s", partner="bolt"), "m://", "bob")
    assert acc.grants_for("alice", ["acme"]) == []


def test_grants_for_an_identity_drive_visibility(acc: AccessRegistry, reg: Registry) -> None:
    acc.grant("b1", "group", "acme", "viewer", actor="bob")
    acc.grant("a2", "user", "carol", "editor", actor="alice")
    acc.grant("a1", "group", "zeta", "viewer", actor="alice")
    assert [(g.dataset, g.principal) for g in acc.grants_for("alice", ["acme"])] == [("b1", "acme")]
    assert [g.dataset for g in acc.grants_for("carol")] == ["a2"]
    assert acc.grants_for("eve", []) == []

    records = reg.list_datasets()

    def visible(identity: Identity) -> list[str]:
        grants = acc.grants_for(identity.user, identity.groups)
        return [r.id for r in visible_datasets(identity, records, grants)]

    scopes = frozenset({ADMIN})
    alice = Identity("alice", frozenset({"acme"}), scopes=scopes)
    assert visible(alice) == ["a1", "a2", "b1"]
    assert visible(Identity("bob", frozenset({"bolt"}), scopes=scopes)) == ["b1"]
    assert visible(Identity("carol", scopes=scopes)) == ["a2"]
    assert visible(Identity("eve", scopes=scopes)) == []
    assert visible(Identity("root", is_admin=True, scopes=scopes)) == ["a1", "a2", "b1"]


def test_a_hidden_dataset_reads_exactly_like_a_missing_one(
    acc: AccessRegistry, reg: Registry
) -> None:
    bob = Identity("bob", frozenset({"bolt"}), scopes=frozenset({ADMIN}))
    a1 = reg.get_dataset("a1")
    with pytest.raises(DatasetHiddenError) as hidden:
        check(bob, a1, Action.READ, acc.list_grants("a1"))
    with pytest.raises(DatasetNotFoundError) as missing:
        reg.get_dataset("zz")
    assert str(hidden.value) == str(missing.value).replace("'zz'", "'a1'")


# ----------------------------------------------------------------------------- tokens


def test_issue_and_verify(acc: AccessRegistry, reg: Registry) -> None:
    issued = acc.issue_token("alice", level="write", expires_at=in_days(30), note="ci")
    assert looks_like_token(issued.token) and issued.token.startswith("s0d_")
    assert "s0d_" not in repr(issued)  # the plaintext does not leak through repr
    token_id, secret = parse_token(issued.token)
    assert token_id == issued.record.id and len(secret) == 43
    rec = issued.record
    assert (rec.owner, rec.note, rec.level, rec.partner, rec.datasets) == (
        "alice",
        "ci",
        Level.WRITE,
        None,
        None,
    )
    assert rec.last_used_at is None and rec.active()

    got = acc.verify_token(issued.token)
    assert got.id == rec.id and got.last_used_at is not None
    assert acc.get_token(rec.id).last_used_at == got.last_used_at
    assert got.restriction() == TokenRestriction(Level.WRITE, token_id=rec.id)

    [entry] = reg.audit_log(action="token.create")
    assert entry.actor == "alice" and entry.dataset is None
    assert entry.detail["id"] == rec.id and entry.detail["level"] == "write"
    assert secret not in str(entry.detail)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "s0d_",
        "token",
        "s0d_0123456789abcdef",
        "s0d_0123456789ABCDEF_" + "a" * 43,
        "s0d_0123456789abcdef_" + "a" * 42,
        "s0d_0123456789abcdef_" + "a" * 44,
        "s0d_0123456789abcdef_" + "a" * 42 + "=",
    ],
)
def test_malformed_tokens_are_unknown(acc: AccessRegistry, bad: str) -> None:
    with pytest.raises(TokenUnknownError, match="invalid API token"):
        acc.verify_token(bad)


def test_wrong_secret_or_id_is_unknown(acc: AccessRegistry) -> None:
    issued = acc.issue_token("alice", level="read", expires_at=in_days(1))
    token_id, secret = parse_token(issued.token)
    other = "A" if secret[0] != "A" else "B"
    for bad in (
        f"s0d_{token_id}_{other}{secret[1:]}",
        f"s0d_{'0' * 16}_{secret}",
    ):
        with pytest.raises(TokenUnknownError) as info:
            acc.verify_token(bad)
        assert str(info.value) == "invalid API token"  # the same, whatever was wrong
    assert acc.get_token(token_id).last_used_at is None


def test_expired_and_revoked(acc: AccessRegistry, reg: Registry) -> None:
    issued = acc.issue_token("alice", level="admin", expires_at=in_days(2))
    acc.verify_token(issued.token, now=in_days(1))
    with pytest.raises(TokenExpiredError):
        acc.verify_token(issued.token, now=in_days(2.01))
    with pytest.raises(TokenNotFoundError):
        acc.revoke_token(issued.record.id, actor="bob")  # not his: looks absent
    rec = acc.revoke_token(issued.record.id, actor="alice", via="hub")
    assert rec.revoked_by == "alice" and rec.revoked_at is not None and not rec.active()
    with pytest.raises(TokenRevokedError):
        acc.verify_token(issued.token)
    assert acc.revoke_token(issued.record.id, actor="alice") == rec  # idempotent
    [entry] = reg.audit_log(action="token.revoke")
    assert entry.actor == "alice" and entry.detail["id"] == rec.id and entry.via == "hub"

    other = acc.issue_token("bob", level="read", expires_at=in_days(2))
    assert acc.revoke_token(other.record.id, actor="root", is_admin=True).revoked_by == "root"
    with pytest.raises(TokenRevokedError):
        acc.verify_token(other.token)
    with pytest.raises(TokenNotFoundError):
        acc.revoke_token("0" * 16, actor="root", is_admin=True)
    for cls in (TokenExpiredError, TokenRevokedError, TokenUnknownError):
        assert issubclass(cls, InvalidTokenError) and issubclass(cls, PermissionError)


def test_issue_validation(acc: AccessRegistry, reg: Registry) -> None:
    cases: list[dict[str, object]] = [
        {"level": "root", "expires_at": in_days(1)},
        {"level": "read", "expires_at": utcnow() - timedelta(seconds=1)},
        {"level": "read", "expires_at": datetime(2100, 1, 1)},  # naive
        {"level": "read", "expires_at": in_days(367)},
        {"level": "read", "expires_at": in_days(1), "datasets": ["Bad Id"]},
        {"level": "read", "expires_at": in_days(1), "datasets": []},
        {"level": "read", "expires_at": in_days(1), "partner": "a b"},
        {"level": "read", "expires_at": in_days(1), "note": "x" * 1001},
    ]
    for kw in cases:
        with pytest.raises(ValidationError):
            acc.issue_token("alice", **kw)  # type: ignore[arg-type]
    assert acc.list_tokens("alice") == []
    assert reg.audit_log(action="token.create") == []


def test_list_tokens(acc: AccessRegistry) -> None:
    t1 = acc.issue_token("alice", level="read", expires_at=in_days(1), note="one")
    t2 = acc.issue_token("alice", level="write", expires_at=in_days(1), note="two")
    acc.issue_token("bob", level="read", expires_at=in_days(1))
    assert {r.note for r in acc.list_tokens("alice")} == {"one", "two"}
    acc.revoke_token(t1.record.id, actor="alice")
    assert [r.id for r in acc.list_tokens("alice", include_inactive=False)] == [t2.record.id]
    assert len(acc.list_tokens("alice")) == 2
    assert acc.list_tokens("carol") == []


def test_a_tokens_restrictions_apply_to_its_owner(acc: AccessRegistry, reg: Registry) -> None:
    issued = acc.issue_token(
        "alice",
        level="write",
        expires_at=in_days(1),
        partner="acme",
        datasets=["a1", "b1", "a1"],
    )
    rec = acc.verify_token(issued.token)
    assert rec.partner == "acme" and rec.datasets == ("a1", "b1")
    acc.grant("b1", "user", "alice", "owner", actor="bob")
    alice = Identity(
        "alice", frozenset({"acme"}), scopes=frozenset({ADMIN}), token=rec.restriction()
    )
    grants = acc.grants_for("alice", alice.groups)
    roles = {r.id: effective_role(alice, r, grants) for r in reg.list_datasets()}
    # a1: owner by partner, capped at write; a2: not in the list; b1: not acme's
    assert roles == {"a1": Role.EDITOR, "a2": None, "b1": None}
    assert alice.via == f"token:{rec.id}"
    with pytest.raises(AccessDeniedError):
        check(alice, reg.get_dataset("a1"), Action.DELETE, grants)


def test_only_hashes_are_stored(acc: AccessRegistry, reg: Registry, tmp_path: Path) -> None:
    """Neither the token nor its secret appears anywhere in the database."""
    issued = [
        acc.issue_token("alice", level="read", expires_at=in_days(1), note="n", via="hub"),
        acc.issue_token("bob", level="admin", expires_at=in_days(1), datasets=["b1"]),
    ]
    for t in issued:
        acc.verify_token(t.token)
    acc.revoke_token(issued[1].record.id, actor="bob")

    dump: list[str] = []
    with reg.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            dump += [repr(tuple(row)) for row in conn.execute(table.select())]
    dumped = "\n".join(dump)
    for t in issued:
        token_id, secret = parse_token(t.token)
        assert token_id in dumped  # the dump does hold the tokens' rows
        assert secret not in dumped and t.token not in dumped
        expected = hashlib.sha256(f"{token_id}:{secret}".encode()).hexdigest()
        with reg.read_session() as s:
            assert s.scalar(select(ApiTokenRow.secret_hash).where(ApiTokenRow.id == token_id)) == (
                expected
            )
    if reg.engine.dialect.name == "sqlite":  # the raw file and its WAL too
        with reg.engine.connect() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(FULL)"))
        db = Path(str(reg.engine.url.database))
        raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
        for t in issued:
            assert parse_token(t.token)[1].encode() not in raw


def test_last_used_is_throttled(reg: Registry) -> None:
    slow = AccessRegistry(reg)  # default: at most one write a minute
    issued = slow.issue_token("alice", level="read", expires_at=in_days(1))
    first = slow.verify_token(issued.token).last_used_at
    assert first is not None
    assert slow.verify_token(issued.token).last_used_at == first
    assert slow.get_token(issued.record.id).last_used_at == first
    later = utcnow() + timedelta(minutes=2)
    assert slow.verify_token(issued.token, now=later).last_used_at == later
    assert slow.get_token(issued.record.id).last_used_at == later
    with pytest.raises(ValidationError):
        slow.verify_token(issued.token, now=datetime(2030, 1, 1))


def test_concurrent_verify_updates_last_used(acc: AccessRegistry) -> None:
    issued = acc.issue_token("alice", level="read", expires_at=in_days(1))
    start = utcnow()

    def use(_: int) -> datetime | None:
        return acc.verify_token(issued.token).last_used_at

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(use, range(80)))
    assert all(r is not None and r >= start for r in results)
    stored = acc.get_token(issued.record.id).last_used_at
    assert stored is not None and stored >= start
    assert stored.tzinfo is not None and stored <= datetime.now(UTC)
