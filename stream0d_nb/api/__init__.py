"""The HTTP API service: a FastAPI app factory run by the hub as a managed service.

``create_app`` builds the app; ``deps`` holds the dependencies (store, identity, group
resolver) that tests override; ``errors`` is the only place errors become HTTP statuses.
"""

from stream0d_nb.api.app import ApiSettings, create_app

__all__ = ["ApiSettings", "create_app"]
