"""``stream0d views`` and ``stream0d alerts events --severity`` as a user runs them: the
same rules as the API (channels known, range not empty), audited, errors in one line."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import CliRun


def _oven(cli: CliRun) -> None:
    code, _, err = cli(
        "dataset", "create", "oven", "--interval", "1min", "--channel", "temp=degC",
        "--channel", "power=kW",
    )  # fmt: skip
    assert code == 0, err
    code, _, err = cli("formula", "add", "oven", "temp_k", "{temp} + 273.15")
    assert code == 0, err


def test_views_round_trip(cli: CliRun) -> None:
    _oven(cli)
    code, out, _ = cli("views", "list", "oven")
    assert code == 0 and "no saved views in oven" in out
    code, out, err = cli(
        "views", "save", "oven", "shift", "--channel", "temp", "--channel", "temp_k",
        "--start", "now - 8h", "--kind", "scatter", "-o", "width=800", "-o", "title=Shift",
        "--description", "last shift",
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == "saved view shift of oven: scatter of temp, temp_k over now-8h .. now"
    code, out, _ = cli("views", "list", "oven", "--json")
    assert json.loads(out) == [
        {
            "name": "shift",
            "channels": ["temp", "temp_k"],
            "start": "now-8h",
            "end": "now",
            "kind": "scatter",
            "options": {"width": 800, "title": "Shift"},
            "description": "last shift",
        }
    ]
    code, out, _ = cli("views", "list", "oven")
    assert code == 0 and "shift" in out and "temp, temp_k" in out and "now-8h .. now" in out
    code, out, _ = cli("views", "show", "oven", "shift")
    assert code == 0 and json.loads(out.split("\n  now: ")[0])["kind"] == "scatter"
    assert " UTC" in out.split("\n  now: ")[1]
    # an existing name needs --replace; then the whole view is replaced
    code, _, err = cli("views", "save", "oven", "shift", "--channel", "power")
    assert code == 1 and "view 'shift' exists in oven; pass --replace" in err
    code, out, err = cli("views", "save", "oven", "shift", "--channel", "power", "--replace")
    assert code == 0 and out.startswith("replaced view shift of oven: line of power"), err
    # the API's rules: known channels, a range that is not empty now, a valid kind
    code, _, err = cli("views", "save", "oven", "bad", "--channel", "nope")
    assert code == 1 and "dataset 'oven' has no channel or derived channel 'nope'" in err
    code, _, err = cli(
        "views", "save", "oven", "bad", "--channel", "temp", "--start", "now", "--end", "now-1h"
    )
    assert code == 1 and "end: the range 'now' .. 'now-1h' is empty" in err
    code, _, err = cli("views", "save", "oven", "bad", "--channel", "temp", "--kind", "pie")
    assert code == 2 and "Invalid value for '--kind'" in err
    code, _, err = cli("views", "save", "oven", "bad", "--channel", "temp", "--start", "soon")
    assert code == 1 and "'soon' is neither a time" in err and "Traceback" not in err
    code, _, err = cli("views", "show", "oven", "bad")
    assert code == 1 and "dataset 'oven' has no view 'bad'" in err
    code, _, err = cli("views", "list", "nope")
    assert code == 1 and "no dataset 'nope'" in err
    # deleting needs the name repeated; every change is in the audit log
    code, _, err = cli("views", "delete", "oven", "shift")
    assert code == 1 and err.strip() == (
        "error: deleting view 'shift' of 'oven': confirm by repeating its name "
        "(fix: --confirm shift)"
    )
    code, out, _ = cli("views", "delete", "oven", "shift", "--confirm", "shift")
    assert code == 0 and "deleted view shift of oven" in out
    code, out, _ = cli("views", "list", "oven", "--json")
    assert json.loads(out) == []
    code, out, _ = cli("audit", "oven")
    assert all(a in out for a in ("view.create", "view.update", "view.delete"))


def test_alert_events_by_severity(tmp_path: Path, cli: CliRun) -> None:
    _oven(cli)
    for name, value, severity in (("hot", "200", "critical"), ("warm", "100", "minor")):
        code, _, err = cli(
            "alerts", "add", "oven", name, "--kind", "threshold", "--channel", "temp",
            "--op", ">", "--value", value, "--severity", severity,
        )  # fmt: skip
        assert code == 0, err
    csv = tmp_path / "oven.csv"
    csv.write_text(
        "time,temp,power\n"
        + "".join(f"2024-03-01T00:0{m}:00,{v},1\n" for m, v in enumerate([90, 150, 250, 90]))
    )
    code, _, err = cli("ingest", "oven", str(csv))
    assert code == 0, err

    def events(*args: str) -> list[tuple[str, str, str]]:
        code, out, err = cli("alerts", "events", "oven", "--json", *args)
        assert code == 0, err
        return sorted((e["rule"], e["severity"], e["to_state"]) for e in json.loads(out))

    everything = events()
    assert {s for _, s, _ in everything} == {"critical", "minor"}
    assert (
        events("--severity", "critical")
        == [e for e in everything if e[1] == "critical"]
        == [("hot", "critical", "firing"), ("hot", "critical", "resolved")]
    )
    assert events("--severity", "minor") == [e for e in everything if e[1] == "minor"]
    assert events("--severity", "info") == []
    code, out, _ = cli("alerts", "events", "oven", "--severity", "critical")
    assert code == 0 and "critical" in out and "minor" not in out
    code, _, err = cli("alerts", "events", "oven", "--severity", "fatal")
    assert code == 1 and "unknown --severity 'fatal': use critical, major, minor" in err
    # confirmations say the flag that gives them (the service names no option syntax)
    code, _, err = cli("alerts", "delete", "oven", "warm")
    assert code == 1 and err.strip().endswith("confirm by repeating its name (fix: --confirm warm)")
    code, _, err = cli("formula", "delete", "oven", "temp_k")
    assert code == 1 and err.strip().endswith("(fix: --confirm temp_k)")
