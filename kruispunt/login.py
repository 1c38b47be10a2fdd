"""The person behind a command: the login name, honouring sudo, as an audit actor.

Operators run the CLIs as a service account (``sudo -u kruispunt ...``), so the
account a process runs as names nobody. NEN 7513 asks for the person: the
account that invoked sudo (``SUDO_USER``), else the owner of the terminal
session (`os.getlogin`), else the name the password database gives the
process's user. Never a bare uid: a process whose user has no name gets an
error that says so, not an actor nobody can look up.
"""

from __future__ import annotations

import os
import pwd
import re
from collections.abc import Callable, Mapping

from kruispunt.errors import ConfigError

__all__ = ["actor", "login_name", "operator_name"]

# What a certificate may carry as an operator's name: one DNS label (kruispunt.pki).
_NOT_LABEL = re.compile(r"[^a-z0-9-]+")


def _getlogin() -> str:
    return os.getlogin()


def _passwd_name(uid: int) -> str:
    return pwd.getpwuid(uid).pw_name


def login_name(
    env: Mapping[str, str] | None = None,
    *,
    getlogin: Callable[[], str] = _getlogin,
    passwd_name: Callable[[int], str] = _passwd_name,
    uid: int | None = None,
) -> str:
    """The name of the person running this process: SUDO_USER, the session's, or the account's.

    Raises ConfigError if none of them is known (a uid with no name in the password
    database): the audit log records people, never numbers.
    """
    env = os.environ if env is None else env
    sudo_user = env.get("SUDO_USER", "").strip()
    if sudo_user:
        return sudo_user
    try:
        name = getlogin().strip()
    except OSError:  # no controlling terminal (cron, systemd, CI)
        name = ""
    if name:
        return name
    who = os.getuid() if uid is None else uid
    try:
        name = passwd_name(who).strip()
    except KeyError:
        name = ""
    if not name:
        raise ConfigError(
            f"cannot tell who runs this command: user id {who} has no name in the password "
            "database, and SUDO_USER is not set; run it from a named account"
        )
    return name


def actor(env: Mapping[str, str] | None = None) -> str:
    """The audit actor of a CLI action: ``operator:<name>``, the name as in the person's
    operator certificate (`operator_name`), so local and admin-service actions of one
    person carry one actor; a login name that gives no such name is kept as it is."""
    name = login_name(env)
    try:
        return f"operator:{operator_name(name)}"
    except ConfigError:
        return f"operator:{name}"


def operator_name(login: str) -> str:
    """The operator certificate name for a login name: lowercase, one DNS label.

    ``Jan.de.Vries`` becomes ``jan-de-vries``. Raises ConfigError if nothing of the
    name is left (name the operator explicitly then).
    """
    label = _NOT_LABEL.sub("-", login.strip().lower()).strip("-")[:63].strip("-")
    if not label:
        raise ConfigError(
            f"login name {login!r} gives no operator name (lowercase letters, digits, "
            "hyphens); choose one with --operator"
        )
    return label
