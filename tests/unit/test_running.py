"""What a serving process records about the settings it runs with (`kruispunt.running`)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from kruispunt.running import (
    RUNNING_FILE,
    forget_running,
    read_running,
    record_running,
    settings_digests,
)
from kruispunt.tomlfile import read_toml
from psi_node.config import RELOADED

BASE = """
[node]
partner_id = "gemeente"
listen = "0.0.0.0:50051"

[inputs.vs]
path = "export.csv"
kind = "bsn"

[policy.vs]
legal_basis = "x"
partners = ["woonbron"]
max_set_size = 10
"""


def digests(tmp_path: Path, text: str) -> tuple[str, str]:
    path = tmp_path / "node.toml"
    path.write_text(text, encoding="utf-8")
    return settings_digests(read_toml(path), RELOADED)


class TestSettingsDigests:
    def test_comments_and_layout_do_not_count(self, tmp_path: Path) -> None:
        """A comment or reordered keys leave both digests as they were."""
        before = 'partner_id = "gemeente"\nlisten = "0.0.0.0:50051"'
        after = 'listen = "0.0.0.0:50051" # here\npartner_id = "gemeente"'
        reordered = BASE.replace(before, after)
        assert digests(tmp_path, BASE) == digests(tmp_path, "# note\n" + reordered)

    def test_policy_and_inputs_change_only_the_whole_digest(self, tmp_path: Path) -> None:
        """A policy, input or strict_input edit is one a running node reads: fixed stays."""
        whole, fixed = digests(tmp_path, BASE)
        for edited in (
            BASE.replace("max_set_size = 10", "max_set_size = 10\nmin_threshold = 3"),
            BASE.replace('kind = "bsn"', 'kind = "bsn"\nignore_columns = ["Toev"]'),
            BASE.replace(
                'listen = "0.0.0.0:50051"', 'listen = "0.0.0.0:50051"\nstrict_input = true'
            ),
        ):
            new_whole, new_fixed = digests(tmp_path, edited)
            assert new_whole != whole
            assert new_fixed == fixed

    def test_listen_address_changes_the_fixed_digest(self, tmp_path: Path) -> None:
        """Settings a running node cannot take over change the fixed digest too."""
        _, fixed = digests(tmp_path, BASE)
        assert digests(tmp_path, BASE.replace(":50051", ":50052"))[1] != fixed


class TestServingFile:
    def test_record_read_and_forget(self, tmp_path: Path) -> None:
        """The record holds this process's id and the digests; a clean stop removes it."""
        when = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
        record_running(tmp_path, sha256="a" * 64, fixed_sha256="b" * 64, started_at=when,
                       loaded_at=when)  # fmt: skip
        running = read_running(tmp_path)
        assert running is not None
        assert (running.pid, running.sha256, running.fixed_sha256) == (
            os.getpid(),
            "a" * 64,
            "b" * 64,
        )
        assert running.alive
        forget_running(tmp_path)
        assert not (tmp_path / RUNNING_FILE).exists()

    def test_another_process_record_is_left_alone(self, tmp_path: Path) -> None:
        """forget_running removes only this process's record; a dead pid is not alive."""
        (tmp_path / RUNNING_FILE).write_text(
            '{"pid": 2147483646, "started_at": "x", "loaded_at": "y", "sha256": "", '
            '"fixed_sha256": ""}'
        )
        running = read_running(tmp_path)
        assert running is not None
        assert not running.alive
        forget_running(tmp_path)
        assert (tmp_path / RUNNING_FILE).exists()

    def test_damaged_record_reads_as_none(self, tmp_path: Path) -> None:
        """A half-written or foreign file is no record (doctor then compares nothing)."""
        (tmp_path / RUNNING_FILE).write_text("{not json")
        assert read_running(tmp_path) is None
