"""The spawner of users' servers on one machine: each as its own OS account.

Kept apart from ``accounts`` so that the CLI, which uses those helpers, does not import
JupyterHub.
"""

from __future__ import annotations

import asyncio
import os
import pwd
from pathlib import Path
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from traitlets import Unicode

from stream0d_nb.hub.accounts import USER_COMMENT, AccountError, account_name, ensure_account
from stream0d_nb.hub.starter import seed_home


class AccountSpawner(LocalProcessSpawner):
    """A user's server as that user's own OS account (``account_name``), made on first spawn.

    The home is ``<homes_dir>/<account>`` (mode 0700, the account's); the environment is
    only what ``Spawner.environment`` and the hub give (``env_keep`` is emptied by config).
    """

    homes_dir = Unicode(help="Folder of the users' homes (under the hub's state)").tag(config=True)

    @property
    def account(self) -> str:
        """This server's OS account."""
        return account_name(self.user.name)

    def _ensure(self) -> pwd.struct_passwd:
        """The account (made on first spawn), its home seeded with the starter notebook."""
        pw = ensure_account(self.account, self.home, USER_COMMENT + self.user.name)
        seed_home(self.home, pw.pw_uid, pw.pw_gid)
        return pw

    @property
    def home(self) -> Path:
        """The user's home under the hub's state (whatever the account once recorded)."""
        return Path(self.homes_dir) / self.account

    def make_preexec_fn(self, name: str) -> Any:
        """Become the user's account (never the hub's) and go home, before exec."""
        become = set_user_setuid(self.account, chdir=False)
        home = str(self.home)

        def preexec() -> None:
            become()
            os.chdir(home)

        return preexec

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        """USER, HOME and SHELL of the user's account."""
        env["USER"] = self.account
        env["HOME"] = str(self.home)
        env["SHELL"] = pwd.getpwnam(self.account).pw_shell
        return env

    async def start(self) -> Any:
        """Make the account (first spawn) and seed its home, then start the server as it."""
        await asyncio.get_running_loop().run_in_executor(None, self._ensure)
        return await super().start()

    async def move_certs(self, paths: dict[str, str]) -> dict[str, str]:
        """Internal SSL is not used here; refuse rather than hand certs to the wrong user."""
        raise AccountError("internal_ssl is not supported by AccountSpawner")
