""" "Show code" of the alert editor: the client calls that do what the screen does.

The preview and its plot run as they are; saving, events and silences follow as calls to
uncomment, so that running the shown code changes nothing on the platform.
"""

from __future__ import annotations

import pprint
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd


def _iso(t: pd.Timestamp) -> str:
    return t.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def rule_dict(rule: Any) -> dict[str, Any]:
    """A rule as the short dict one would type: its name, kind and the options set."""
    data: dict[str, Any] = rule.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    return {"name": rule.name, "kind": rule.kind, **data}


def alert_code(
    dataset: str,
    rule: Mapping[str, Any],
    start: pd.Timestamp,
    end: pd.Timestamp,
    channels: Sequence[str],
    events: Mapping[str, Any],
) -> str:
    """Python that previews ``rule`` over ``[start, end)`` (UTC), plots its episodes on
    ``channels``, then (commented) saves it, lists its events with the screen's
    ``events`` filters and mutes it."""
    text = pprint.pformat(dict(rule), sort_dicts=False, width=84)
    filters = "".join(f", {k}={v!r}" for k, v in events.items() if v not in (None, ""))
    name = rule.get("name", "")
    return (
        "from stream0d_nb.client import Client\n"
        "from stream0d_nb.plots import episodes_from_preview, live_timeseries\n\n"
        "client = Client.from_env()\n"
        f"rule = {text}\n"
        f"start, end = {_iso(start)!r}, {_iso(end)!r}\n"
        "# run the unsaved rule over the window: nothing is stored or sent\n"
        f"preview = client.preview_alert_rule({dataset!r}, rule, start=start, end=end)\n"
        "print(len(preview.episodes), 'episode(s)')\n"
        f"live_timeseries(client, {dataset!r}, {list(channels)!r}, start, end, "
        "episodes=episodes_from_preview(preview))\n\n"
        "# save it (editors and owners): every write of data then evaluates it\n"
        f"# client.add_alert_rule({dataset!r}, rule)\n"
        "# its events, newest first\n"
        f"# client.alert_events({dataset!r}{filters})\n"
        "# mute its notifications for two hours (events are still stored)\n"
        "# now = pd.Timestamp.now(tz='UTC')\n"
        f"# client.silence({dataset!r}, rule={name!r}, start=now, "
        "end=now + pd.Timedelta('2h'))\n"
    )
