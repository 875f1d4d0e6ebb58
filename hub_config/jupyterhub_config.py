"""JupyterHub configuration of stream0d: everything comes from the partners file.

``STREAM0D_PARTNERS`` names the partners file (default: ``partners.toml`` beside this
file); ports, state folder and secrets come from ``STREAM0D_HUB_*`` variables (see
``docs/hub.md``). The helpers in ``stream0d_nb.hub`` build the traitlets config.
"""

import os
from pathlib import Path

from stream0d_nb.hub import apply, load_partners

c = get_config()  # noqa: F821 (provided by JupyterHub when it loads this file)
partners = load_partners(os.environ.get("STREAM0D_PARTNERS", Path(__file__).with_name("partners.toml")))
apply(c, partners)
