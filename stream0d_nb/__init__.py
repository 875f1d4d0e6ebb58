"""stream0d_nb: a Jupyter-centric data platform for zero-defect manufacturing.

Layers (imports point down only): specs/errors/settings -> store, ingest -> cli.
"""

__version__ = "0.1.0"
