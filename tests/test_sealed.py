"""Secrets at rest: alert sink configurations are sealed in the registry."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from stream0d_nb.alerts.service import AlertService
from stream0d_nb.alerts.sinks import sink_from_config
from stream0d_nb.db.sealed import Sealer, SecretKeyError
from stream0d_nb.settings import Settings
from stream0d_nb.store import Store

WEBHOOK = {
    "name": "ops-hook",
    "kind": "webhook",
    "url": "https://hooks.example.org/stream0d",
    "secret": "very-secret-signing-key",
}


def _save(store: Store) -> None:
    svc = AlertService(store)
    cfg = sink_from_config(WEBHOOK).config.dump_with_secrets()
    svc.table.save_sink("ops-hook", "webhook", cfg, "alice")


def _raw(store: Store) -> str:
    with store.registry.engine.connect() as c:
        return json.dumps(c.execute(text("SELECT config FROM alert_sinks")).scalar_one())


def test_sink_secrets_are_sealed_at_rest_and_read_back(tmp_path: Path) -> None:
    with Store(Settings(home=tmp_path)) as store:
        _save(store)
        assert "very-secret-signing-key" not in _raw(store)
        assert "hooks.example.org" not in _raw(store)
        kind, cfg = AlertService(store).table.sinks()["ops-hook"]
        assert kind == "webhook" and cfg["secret"] == "very-secret-signing-key"
    key = tmp_path / "secret.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600


def test_another_key_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    with Store(Settings(home=tmp_path, secret_key="k" * 40)) as store:
        _save(store)
    with (
        Store(Settings(home=tmp_path, secret_key="x" * 40)) as store,
        pytest.raises(SecretKeyError, match=r"alert sink 'ops-hook'.*STREAM0D_SECRET_KEY"),
    ):
        AlertService(store).table.sinks()
    with Store(Settings(home=tmp_path, secret_key="k" * 40)) as store:
        assert AlertService(store).table.sinks()["ops-hook"][1]["url"] == WEBHOOK["url"]


def test_plain_rows_from_before_sealing_still_read(tmp_path: Path) -> None:
    sealer = Sealer("s" * 32)
    plain = {"url": "https://x.example.org", "kind": "webhook"}
    assert sealer.unseal(plain, "sink") == plain
    assert sealer.unseal(sealer.seal(plain), "sink") == plain


def test_short_keys_are_refused() -> None:
    with pytest.raises(SecretKeyError, match="at least 32"):
        Sealer("short")
