"""Settings from the environment (``STREAM0D_*``) with the embedded defaults.

Default: everything under ``./var`` (or ``$STREAM0D_HOME``): Icechunk repositories in
``datasets/`` and the SQLite registry ``registry.sqlite``. Production points
``STREAM0D_STORAGE_URL`` at ``az://container/prefix`` and ``STREAM0D_DATABASE_URL`` at
PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where data and the registry live, and how to reach Azure."""

    model_config = SettingsConfigDict(env_prefix="STREAM0D_", extra="ignore")

    home: Path = Field(Path("var"), description="Root of the local store and registry.")
    storage_url: str | None = Field(
        None,
        description="Where dataset repositories live: a local path or az://container/prefix. "
        "Default: <home>/datasets.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the registry. Default: sqlite:///<home>/registry.sqlite",
    )
    azure_account: str | None = Field(None, description="Azure storage account name.")
    azure_key: str | None = Field(None, description="Azure storage account key.")
    azure_sas_token: str | None = Field(None, description="Azure SAS token (instead of a key).")
    azure_endpoint: str | None = Field(
        None, description="Blob endpoint, e.g. http://127.0.0.1:10000/devstoreaccount1 (Azurite)."
    )
    user: str | None = Field(None, description="Who is acting, recorded in commits and audit.")
    secret_key: SecretStr | None = Field(
        None,
        description="Key sealing secrets at rest (alert sink passwords); 32+ characters, the "
        "same for every process sharing a registry. Default: <home>/secret.key, made once.",
    )

    def resolved_storage_url(self) -> str:
        """The storage root, defaulting to ``<home>/datasets``."""
        return self.storage_url or str((self.home / "datasets").resolve())

    def resolved_database_url(self) -> str:
        """The registry URL, defaulting to SQLite under home."""
        return self.database_url or f"sqlite:///{(self.home / 'registry.sqlite').resolve()}"
