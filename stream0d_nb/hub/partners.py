"""The partners file: who the partners are and how their people log in to the hub.

``hub_config/partners.toml`` is the one place a deployment lists its partners. Each
partner becomes a JupyterHub group of the same slug; the login section says whether
people log in locally (the embedded demo), through one shared identity provider whose
groups claim names the partner, or through one identity provider per partner.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stream0d_nb.access import Level
from stream0d_nb.errors import Stream0dError
from stream0d_nb.specs import check_slug


class PartnersFileError(Stream0dError, ValueError):
    """The partners file is missing, unreadable or inconsistent (names file and field)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OIDCLogin(_Model):
    """A generic OpenID Connect provider (oauthenticator's ``GenericOAuthenticator``)."""

    kind: Literal["oidc"] = "oidc"
    label: str = Field("Partner SSO", description="Button text: 'Sign in with <label>'.")
    authorize_url: str
    token_url: str
    userdata_url: str
    client_id: str
    client_secret_env: str = Field(
        ..., description="Name of the environment variable holding the client secret."
    )
    scope: list[str] = ["openid", "profile", "email"]
    username_claim: str = "preferred_username"
    groups_claim: str | None = Field(
        None,
        description="Where the partner slugs are in the auth state, e.g. 'oauth_user.groups' "
        "(shared provider); unset for a partner's own provider.",
    )
    basic_auth: bool = True


class AzureADLogin(_Model):
    """A partner's Azure AD / Entra ID tenant (oauthenticator's ``AzureAdOAuthenticator``)."""

    kind: Literal["azuread"] = "azuread"
    label: str = "Azure AD"
    tenant_id: str
    client_id: str
    client_secret_env: str


Login = Annotated[OIDCLogin | AzureADLogin, Field(discriminator="kind")]


class Partner(_Model):
    """One partner: a JupyterHub group of the same slug."""

    slug: str
    name: str
    level: Level = Field(
        Level.WRITE,
        description="What members' sessions and tokens may do at most (their grants decide where).",
    )
    login: Login | None = Field(None, description="The partner's own provider (per-partner mode).")
    demo_users: list[str] = Field([], description="Users of the local demo login.")

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        if "-" in value:  # the partner of a dataset id is the text before its first '-'
            raise ValueError(f"partner slug {value!r} must not contain '-' (use '_')")
        return check_slug(value, "partner slug")


class HubSection(_Model):
    """How the hub is reached and how people log in."""

    login: Literal["local", "shared", "per-partner"] = "local"
    shared: OIDCLogin | None = Field(None, description="The shared provider (login = 'shared').")
    admins: list[str] = Field([], description="Hub admins: see and manage every dataset.")
    public_url: str = Field(
        "http://127.0.0.1:8000", description="Where browsers reach the hub (the proxy)."
    )


class Partners(_Model):
    """The whole partners file."""

    hub: HubSection = HubSection()
    partners: list[Partner]

    @model_validator(mode="after")
    def _consistent(self) -> Partners:
        slugs = [p.slug for p in self.partners]
        dupes = sorted({s for s in slugs if slugs.count(s) > 1})
        if dupes:
            raise ValueError(f"partner slugs appear twice: {', '.join(dupes)}")
        if self.hub.login == "shared" and self.hub.shared is None:
            raise ValueError("hub.login = 'shared' needs a [hub.shared] provider")
        if self.hub.login == "shared" and self.hub.shared and not self.hub.shared.groups_claim:
            raise ValueError("[hub.shared] needs groups_claim: it names each user's partner")
        if self.hub.login == "per-partner":
            missing = [p.slug for p in self.partners if p.login is None]
            if missing:
                raise ValueError(f"per-partner login: no [partners.login] for {', '.join(missing)}")
        if self.hub.login == "local":
            users = [u for p in self.partners for u in p.demo_users]
            twice = sorted({u for u in users if users.count(u) > 1})
            if twice:
                raise ValueError(f"demo users in two partners: {', '.join(twice)}")
        return self

    def partner(self, slug: str) -> Partner:
        """The partner of that slug."""
        for p in self.partners:
            if p.slug == slug:
                return p
        raise KeyError(slug)


def load_partners(path: str | os.PathLike[str]) -> Partners:
    """Read and check a partners file; errors name the file and the field."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PartnersFileError(f"{path}: partners file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise PartnersFileError(f"{path}: not valid TOML: {exc}") from None
    try:
        return Partners.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise PartnersFileError(f"{path}: {problems}") from None
