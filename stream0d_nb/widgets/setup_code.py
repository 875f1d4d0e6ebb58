""" "Show code" of the setup screen: the client calls that do what it does, so that a
person can repeat an ingest from a notebook or a script (e.g. every month's file)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stream0d_nb.specs import DatasetSpec


def setup_code(
    dataset: str,
    file: str,
    options: Mapping[str, Any],
    created: DatasetSpec | None = None,
) -> str:
    """Python that previews then ingests ``file`` into ``dataset`` with ``options`` (those
    that differ from the defaults), after creating the dataset if ``created`` says so."""
    lines = [
        "from stream0d_nb.client import Client",
        "from stream0d_nb.specs import IngestOptions",
        "",
        "client = Client.from_env()",
    ]
    if created is not None:
        spec = created.model_dump(mode="json", exclude_defaults=True)
        spec.pop("channels", None)
        lines.append(f"# the dataset was created with: client.create_dataset({spec!r})")
    args = ",\n".join(f"    {k}={v!r}" for k, v in options.items())
    lines += [
        f"options = IngestOptions(\n{args},\n)" if options else "options = IngestOptions()",
        f"preview = client.preview_ingest({dataset!r}, {file!r}, options=options)",
        "for problem in preview.problems:",
        "    print(problem.message, problem.locations, problem.fixes)",
        f"report = client.ingest({dataset!r}, {file!r}, options)",
        "print(report)",
        f"client.history({dataset!r})[:3]",
    ]
    return "\n".join(lines) + "\n"
