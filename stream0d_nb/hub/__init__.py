"""The hub side: partners file, JupyterHub configuration helpers, the API as a service."""

from stream0d_nb.hub.config import HubPlaces, apply, hub_config, role_scopes, roles
from stream0d_nb.hub.partners import Partner, Partners, PartnersFileError, load_partners

__all__ = [
    "HubPlaces",
    "Partner",
    "Partners",
    "PartnersFileError",
    "apply",
    "hub_config",
    "load_partners",
    "role_scopes",
    "roles",
]
