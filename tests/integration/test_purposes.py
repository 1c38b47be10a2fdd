"""Purposes as a coordinator keeps them for years: versions, history, diff, retirement.

Run through `psi-coordinator purpose ...` in-process against a real network
(real SQLite, real audit log, real servers for the round that a retired
purpose may no longer start).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from coordinator import cli as coordinator_cli
from coordinator.store import Store
from kruispunt.errors import ConfigError
from tests.support.setup_files import LEGAL_BASIS, purpose_toml

PARTNERS = ["gemeente", "woonbron", "schuldhulp"]


def fields(**overrides: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "vroegsignalering",
        "description": "Vroegsignalering van huishoudens met betalingsachterstanden",
        "identifier_kind": "bsn",
        "threshold": 2,
        "disclosure": "partners",
        "result_retention_days": 28,
        "max_set_size": 100_000,
        "covenant_id": "CONV-2026-01",
        "dpia_reference": "DPIA-2026-07",
        "legal_basis": dict.fromkeys(PARTNERS, LEGAL_BASIS),
    }
    out.update(overrides)
    return out


@pytest.fixture
def net(network_factory):
    return network_factory(PARTNERS, per_partner=20, overlaps={2: 4})


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = coordinator_cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def write(tmp_path: Path, name: str, **overrides: Any) -> Path:
    path = tmp_path / name
    path.write_text(purpose_toml(fields(**overrides)), encoding="utf-8")
    return path


def purpose_events(net: Any) -> list[Any]:
    return [e for e in net.coordinator.audit.events() if e.event.startswith("purpose.")]


class TestAdd:
    def test_an_identical_re_add_changes_nothing_and_logs_nothing(self, net, tmp_path, capsys):
        """The issue's `changed: []`: the same file twice is one version and one audit event."""
        path = write(tmp_path, "p.toml")
        code, out, err = cli(capsys, "purpose", "add", net.coordinator_dir, path)
        assert code == 0, err
        assert "registered as version 1" in out
        code, out, err = cli(capsys, "purpose", "add", net.coordinator_dir, path, "--json")
        assert code == 0, err
        answer = json.loads(out)
        assert (answer["version"], answer["unchanged"], answer["changed"]) == (1, True, [])
        code, out, _ = cli(capsys, "purpose", "add", net.coordinator_dir, path)
        assert "already registered as version 1 with this definition: nothing changed" in out
        assert [e.event for e in purpose_events(net)] == ["purpose.added"]

    def test_a_change_is_a_new_version_naming_what_changed(self, net, tmp_path, capsys):
        """Threshold and one partner's basis changed: version 2, both named, audited."""
        cli(capsys, "purpose", "add", net.coordinator_dir, write(tmp_path, "v1.toml"))
        basis = dict.fromkeys(PARTNERS, LEGAL_BASIS) | {"woonbron": "AVG art. 6(1)(c)"}
        changed = write(tmp_path, "v2.toml", threshold=3, legal_basis=basis)
        code, out, err = cli(capsys, "purpose", "add", net.coordinator_dir, changed)
        assert code == 0, err
        assert "registered as version 2" in out
        assert "  threshold: 2 -> 3" in out
        assert f"  legal_basis.woonbron: {LEGAL_BASIS!r} -> 'AVG art. 6(1)(c)'" in out
        last = purpose_events(net)[-1]
        assert last.event == "purpose.changed"
        assert last.details["changed"] == ["legal_basis", "threshold"]

    def test_a_purpose_naming_an_unregistered_partner_is_refused(self, net, tmp_path, capsys):
        """Refused at add, naming the partner and the fix; nothing stored, nothing logged."""
        basis = dict.fromkeys([*PARTNERS, "zayaz"], LEGAL_BASIS)
        path = write(tmp_path, "p.toml", legal_basis=basis)
        code, _out, err = cli(capsys, "purpose", "add", net.coordinator_dir, path)
        assert code == 1
        assert "names 'zayaz', not a registered active partner" in err
        assert "partner add" in err
        assert cli(capsys, "purpose", "list", net.coordinator_dir)[1].strip() == "no purposes"
        assert purpose_events(net) == []


class TestShowHistoryDiff:
    @pytest.fixture
    def three_versions(self, net, tmp_path, capsys, monkeypatch):
        """Version 1 by alice, 2 (threshold 3) by bob, 3 (retention 14 days) by alice."""
        for name, overrides in (
            ("alice", {}),
            ("bob", {"threshold": 3}),
            ("alice", {"threshold": 3, "result_retention_days": 14}),
        ):
            monkeypatch.setenv("SUDO_USER", name)
            path = write(tmp_path, f"{name}-{len(overrides)}.toml", **overrides)
            assert cli(capsys, "purpose", "add", net.coordinator_dir, path)[0] == 0
        return net

    def test_show_prints_the_current_version_or_an_earlier_one(self, three_versions, capsys):
        """`purpose show` is the whole definition; --version N an earlier one, marked so."""
        directory = three_versions.coordinator_dir
        code, out, err = cli(capsys, "purpose", "show", directory, "vroegsignalering")
        assert code == 0, err
        assert out.startswith("purpose 'vroegsignalering' version 3 (current)")
        assert "  result_retention_days: 14" in out
        assert "by operator:alice" in out
        code, out, _ = cli(
            capsys, "purpose", "show", directory, "vroegsignalering", "--version", "1", "--json"
        )
        shown = json.loads(out)
        assert (shown["version"], shown["threshold"], shown["current"]) == (1, 2, False)
        code, _out, err = cli(
            capsys, "purpose", "show", directory, "vroegsignalering", "--version", "7"
        )
        assert code == 1
        assert "has no version 7 (versions kept: 1, 2, 3)" in err

    def test_history_lists_every_version_with_who_and_what(self, three_versions, capsys):
        """One row per version under a header: when, by whom, the fields it changed."""
        code, out, err = cli(
            capsys, "purpose", "history", three_versions.coordinator_dir, "vroegsignalering"
        )
        assert code == 0, err
        header, *rows = out.strip().splitlines()
        assert header.split() == ["VERSION", "REGISTERED", "BY", "CHANGED"]
        assert [r.split()[0] for r in rows] == ["v1", "v2", "v3"]
        assert rows[0].split()[-2:] == ["operator:alice", "registered"]
        assert rows[1].split()[-2:] == ["operator:bob", "threshold"]
        assert rows[2].split()[-2:] == ["operator:alice", "result_retention_days"]

    def test_diff_names_each_changed_field_old_and_new(self, three_versions, capsys):
        """`purpose diff ID 1 3`: threshold and retention, old -> new; the same version: same."""
        directory = three_versions.coordinator_dir
        code, out, err = cli(capsys, "purpose", "diff", directory, "vroegsignalering", "1", "3")
        assert code == 0, err
        assert out.splitlines() == [
            "purpose 'vroegsignalering': version 1 -> version 3",
            "  result_retention_days: 28 -> 14",
            "  threshold: 2 -> 3",
        ]
        code, out, _ = cli(
            capsys, "purpose", "diff", directory, "vroegsignalering", "2", "2", "--json"
        )
        assert json.loads(out)["changes"] == {}
        code, _out, err = cli(capsys, "purpose", "diff", directory, "vroegsignalering", "1", "9")
        assert code == 1
        assert "no version 9" in err

    def test_an_unknown_purpose_is_named(self, net, capsys):
        for action in ("show", "history"):
            code, _out, err = cli(capsys, "purpose", action, net.coordinator_dir, "onbekend")
            assert code == 1
            assert "unknown purpose 'onbekend'" in err


class TestRetire:
    def test_a_retired_purpose_runs_no_round_and_its_id_is_not_reused(
        self, net, tmp_path, capsys, monkeypatch
    ):
        """Retire is audited with who and why; a round of it is refused; re-adding is refused."""
        path = write(tmp_path, "p.toml")
        cli(capsys, "purpose", "add", net.coordinator_dir, path)
        monkeypatch.setenv("SUDO_USER", "carla")
        code, out, err = cli(
            capsys,
            "purpose",
            "retire",
            net.coordinator_dir,
            "vroegsignalering",
            "--reason",
            "convenant beëindigd per 2027",
        )
        assert code == 0, err
        assert "retired: no round of it runs again" in out
        event = purpose_events(net)[-1]
        assert (event.event, event.actor, event.action) == (
            "purpose.retired",
            "operator:carla",
            "D",
        )
        assert event.details["reason"] == "convenant beëindigd per 2027"
        listed = cli(capsys, "purpose", "list", net.coordinator_dir)[1]
        assert "retired" in listed.splitlines()[1]
        with pytest.raises(ConfigError, match=r"was retired on .* by operator:carla"):
            net.run()
        refused = net.coordinator.audit.events()[-1]
        assert refused.event == "round.rejected"
        assert "retired" in refused.details["reason"]
        code, _out, err = cli(capsys, "purpose", "add", net.coordinator_dir, path)
        assert code == 1
        assert "a retired id is not used again" in err
        code, _out, err = cli(
            capsys, "purpose", "retire", net.coordinator_dir, "vroegsignalering", "--reason", "x"
        )
        assert code == 1
        assert "already retired" in err

    def test_history_survives_a_database_that_predates_it(self, net, tmp_path, capsys):
        """A purpose stored before versions were kept opens its history with that version."""
        cli(capsys, "purpose", "add", net.coordinator_dir, write(tmp_path, "p.toml"))
        db = sqlite3.connect(net.config.database)
        db.execute("DROP TABLE purpose_versions")
        db.commit()
        db.close()
        for _ in ("read-only, unmigrated", "after a writer migrated it"):
            code, out, err = cli(
                capsys, "purpose", "history", net.coordinator_dir, "vroegsignalering"
            )
            assert code == 0, err
            assert out.splitlines()[1].split()[0] == "v1"
            assert "the history begins with the version current when it was first kept" in out
            Store(net.config.database).close()  # a writer opens it: the migration runs
