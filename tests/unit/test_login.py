"""kruispunt.login: the person behind a command, never a uid."""

from __future__ import annotations

import pytest

from kruispunt.errors import ConfigError
from kruispunt.login import actor, login_name, operator_name


def no_terminal() -> str:
    raise OSError(6, "No such device or address")


def no_passwd_entry(uid: int) -> str:
    raise KeyError(uid)


class TestLoginName:
    def test_sudo_user_comes_first(self) -> None:
        """Under `sudo -u kruispunt`, the person who ran sudo is named, not the account."""
        name = login_name(
            {"SUDO_USER": "alice", "USER": "kruispunt"},
            getlogin=lambda: "bob",
            passwd_name=lambda uid: "kruispunt",
        )
        assert name == "alice"

    def test_the_terminal_session_without_sudo(self) -> None:
        """Without sudo, the owner of the terminal session."""
        assert login_name({}, getlogin=lambda: "bob", passwd_name=lambda uid: "x") == "bob"

    def test_no_terminal_falls_back_to_the_account_name(self) -> None:
        """No controlling terminal (cron, CI): the password database's name for the uid."""
        seen: list[int] = []

        def passwd_name(uid: int) -> str:
            seen.append(uid)
            return "kruispunt"

        assert login_name({}, getlogin=no_terminal, passwd_name=passwd_name, uid=0) == "kruispunt"
        assert seen == [0]

    def test_a_uid_without_a_name_is_an_error_not_an_actor(self) -> None:
        """A uid no one can look up is refused with a clear message, never used as a name."""
        with pytest.raises(ConfigError, match="user id 1234 has no name") as err:
            login_name({}, getlogin=no_terminal, passwd_name=no_passwd_entry, uid=1234)
        assert "uid1234" not in str(err.value)

    def test_blank_sudo_user_is_ignored(self) -> None:
        """An empty SUDO_USER names nobody: the next source is asked."""
        assert login_name({"SUDO_USER": " "}, getlogin=lambda: "bob") == "bob"


class TestOperatorName:
    @pytest.mark.parametrize(
        ("login", "name"),
        [
            ("alice", "alice"),
            ("Jan.de.Vries", "jan-de-vries"),
            ("a_b", "a-b"),
            ("-x-", "x"),
            ("x" * 80, "x" * 63),
        ],
    )
    def test_login_names_become_one_dns_label(self, login: str, name: str) -> None:
        """A login name becomes the label an operator certificate can carry."""
        assert operator_name(login) == name

    def test_nothing_left_is_an_error(self) -> None:
        """A login name with no usable character asks for an explicit name."""
        with pytest.raises(ConfigError, match="--operator"):
            operator_name("éé")


class TestActor:
    def test_actor_is_the_operator_name(self) -> None:
        """The actor of a local action carries the same name as the person's certificate."""
        assert actor({"SUDO_USER": "Jan.de.Vries"}) == "operator:jan-de-vries"
        assert actor({"SUDO_USER": "éé"}) == "operator:éé"
