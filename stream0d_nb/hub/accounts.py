"""OS accounts on one machine: the platform account and one account per hub user.

People's code (a notebook kernel, later a dashboard kernel) is untrusted: on one machine
each hub user's server runs as its own unprivileged account, made on first spawn, with
its home under the hub's state folder, while the platform's files (store, registry,
secret key, hub database, cookie secret, password files) belong to the platform account
and are unreadable to users (see docs/hub.md, "Security"). The hub needs root for this
(it switches users); without root, ``make run`` announces a single-user mode instead.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import re
import stat
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

PLATFORM_ACCOUNT = "stream0d"
PLATFORM_HOME = Path("/var/lib/stream0d")
ACCOUNT_PREFIX = "s0d-"
USER_COMMENT = "stream0d hub user "
_BAD = re.compile(r"[^a-z0-9_-]+")


class AccountError(RuntimeError):
    """An OS account cannot be made or used as the isolation model needs."""


def can_switch_users() -> bool:
    """Whether this process may run servers as other OS accounts (root on POSIX)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


def account_name(hub_user: str) -> str:
    """The OS account of hub user ``hub_user``: ``s0d-<name>``, valid and collision-free.

    Hub names may hold characters no OS name allows (``fersa:alice``, e-mail addresses);
    whenever the name had to change, a short hash of the original keeps two hub users
    apart (``s0d-fersa-alice-3f9a1c``). At most 32 characters (useradd's limit).
    """
    clean = _BAD.sub("-", hub_user.lower()).strip("-") or "user"
    if clean == hub_user and len(clean) <= 28:
        return ACCOUNT_PREFIX + clean
    digest = hashlib.sha256(hub_user.encode()).hexdigest()[:6]
    return f"{ACCOUNT_PREFIX}{clean[:21]}-{digest}"


def _run(cmd: list[str]) -> None:
    """Run an account tool; retried while another one holds /etc/passwd's lock (exit 10)."""
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # useradd, runuser
    for attempt in range(20):
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, env={"PATH": path})
        if done.returncode != 10:
            break
        time.sleep(0.05 * (attempt + 1))
    if done.returncode != 0 and not (cmd[0] == "useradd" and done.returncode == 9):
        # 9: useradd found the name taken (made meanwhile): the caller checks whose it is
        raise AccountError(f"{' '.join(cmd)} failed: {done.stderr.strip() or done.stdout}")


def ensure_account(
    name: str, home: Path, comment: str, shell: str = "/bin/bash"
) -> pwd.struct_passwd:
    """The OS account ``name`` (a system account with its own group), made if missing.

    An existing account is reused only if its comment is ``comment``: a hub user never
    takes over an account made for somebody else or for another purpose. ``home`` is
    made (0700, the account's) even when the account's recorded home differs (the hub's
    state moved): callers use ``home``, never the recorded one.
    """
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        home.parent.mkdir(parents=True, exist_ok=True)
        _run(
            ["useradd", "--system", "--no-log-init", "--user-group", "--home-dir", str(home),
             "--no-create-home", "--shell", shell, "--comment", comment, name]
        )  # fmt: skip
        entry = pwd.getpwnam(name)
    if entry.pw_gecos != comment:
        raise AccountError(
            f"OS account {name!r} exists but was not made for this ({entry.pw_gecos!r}, "
            f"expected {comment!r}); remove it or choose another name"
        )
    if entry.pw_uid == 0 or entry.pw_gid == 0:
        raise AccountError(f"OS account {name!r} has uid or gid 0")
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = home.stat()
    if (st.st_uid, st.st_gid) != (entry.pw_uid, entry.pw_gid):
        os.chown(home, entry.pw_uid, entry.pw_gid)
    home.chmod(0o700)
    return entry


def ensure_platform_account(name: str = PLATFORM_ACCOUNT) -> pwd.struct_passwd:
    """The account of the platform processes (API, scheduler, alert runner, CLI as root)."""
    return ensure_account(name, PLATFORM_HOME, "stream0d platform", shell="/usr/sbin/nologin")


def _reachable_dirs(path: Path) -> list[Path]:
    """The ancestors of ``path`` (itself included), outermost first."""
    path = path.resolve()
    return [*reversed(path.parents), path]


def open_for_traversal(paths: Iterable[Path]) -> list[Path]:
    """Give others search (x) permission on every ancestor of ``paths`` lacking it.

    User accounts must reach their homes and run the venv's Python; only traversal is
    granted, never listing or reading. Returns the folders changed (to be announced).
    """
    changed: list[Path] = []
    for path in paths:
        for d in _reachable_dirs(path):
            mode = d.stat().st_mode
            if not mode & stat.S_IXOTH:
                d.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
                changed.append(d)
    return changed


def lock_down(platform: pwd.struct_passwd, private: Iterable[Path], homes: Path) -> None:
    """Make ``private`` folders the platform account's alone, except the users' homes.

    Everything under them becomes owned by the platform account, group and others lose
    every right; the folders on the way to ``homes`` keep only search (x) for others so
    each user reaches their own home (itself 0700, their own).
    """
    homes = homes.resolve()
    way = set(_reachable_dirs(homes)[:-1])
    uid, gid = platform.pw_uid, platform.pw_gid
    for top in private:
        top = top.resolve()
        top.mkdir(parents=True, exist_ok=True)
        for root, dirs, files in os.walk(top):
            here = Path(root)
            if here == homes:
                dirs[:] = []
                continue
            for p in (here, *(here / f for f in files)):
                st = p.lstat()
                if stat.S_ISLNK(st.st_mode):
                    continue
                if (st.st_uid, st.st_gid) != (uid, gid):
                    os.chown(p, uid, gid)
                mode = stat.S_IMODE(st.st_mode) & 0o700
                if p in way:
                    mode |= 0o711
                if stat.S_IMODE(st.st_mode) != mode:
                    p.chmod(mode)
    homes.mkdir(parents=True, exist_ok=True)
    os.chown(homes, uid, gid)
    homes.chmod(0o711)


def can_run(account: str, python: Path) -> str | None:
    """Why ``account`` cannot run ``python`` (None when it can)."""
    done = subprocess.run(
        ["/usr/sbin/runuser" if Path("/usr/sbin/runuser").exists() else "runuser", "-u",
         account, "--", str(python), "-c", "import jupyterhub, stream0d_nb"],
        capture_output=True, text=True, check=False, cwd="/",
    )  # fmt: skip
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


def group_members(name: str) -> list[str]:
    """Members of OS group ``name`` (empty when it does not exist)."""
    try:
        return list(grp.getgrnam(name).gr_mem)
    except KeyError:
        return []


def become_owner_of(home: Path) -> str | None:
    """As root, become the owner of the platform folder ``home`` when it is not root.

    An operator's CLI is a platform process: run as root on a home that the hub handed to
    the platform account, it would leave root-owned files that the services cannot write.
    Returns the account become, or None when nothing changed.
    """
    if not can_switch_users() or not home.exists():
        return None
    st = home.stat()
    if st.st_uid == 0:
        return None
    entry = pwd.getpwuid(st.st_uid)
    os.setgroups([])
    os.setgid(st.st_gid)
    os.setuid(st.st_uid)
    os.umask(0o077)
    os.environ["HOME"] = entry.pw_dir
    return entry.pw_name
