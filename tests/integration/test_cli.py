"""The two CLIs as operators use them: exit codes and messages, against real servers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from coordinator import cli as coordinator_cli
from psi_node import cli as node_cli

BIN = Path(sys.executable).parent


@pytest.fixture
def served(network_factory, monkeypatch):
    """A 3-partner network with a purpose, the CLI pointed at the running coordinator."""
    net = network_factory(
        ["gemeente", "woonbron", "schuldhulp"], per_partner=30, overlaps={2: 4, 3: 2}
    )
    net.add_purpose()
    monkeypatch.setenv("KRUISPUNT_COORDINATOR_LISTEN", f"127.0.0.1:{net.coordinator.port}")
    return net


def run_cli(main, argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


class TestRoundCommands:
    def test_round_run_prints_summary_and_exits_zero(self, served, capsys):
        """`round run` streams progress to stderr and prints who learned what."""
        code, out, err = run_cli(
            coordinator_cli.main,
            ["round", "run", served.coordinator_dir, "vroegsignalering"],
            capsys,
        )
        assert code == 0, err
        assert "COMPLETED" in out
        assert "[propose]" in err
        assert "[deliver]" in err
        for pid in served.partners:
            assert pid in out

    def test_round_run_json_is_machine_readable(self, served, capsys):
        """`round run --json` prints one JSON document with per-partner counts."""
        code, out, _ = run_cli(
            coordinator_cli.main,
            ["round", "run", served.coordinator_dir, "vroegsignalering", "--json"],
            capsys,
        )
        assert code == 0
        data = json.loads(out)
        assert data["state"] == "completed"
        assert data["partners"]["gemeente"]["set_size"] == 30
        assert data["partners"]["gemeente"]["flagged_count"] == len(
            served.data.flagged_for("gemeente", 2)
        )

    def test_unknown_purpose_is_one_clear_message(self, served, capsys):
        """An unknown purpose exits non-zero and says which purpose is unknown."""
        code, out, err = run_cli(
            coordinator_cli.main, ["round", "run", served.coordinator_dir, "nope"], capsys
        )
        assert code == 1
        assert "unknown purpose 'nope'" in err
        assert "Traceback" not in err + out

    def test_node_down_names_the_partner_and_marks_round_failed(self, served, capsys):
        """With a node down, the CLI exits non-zero naming it; `round show` says failed."""
        served.stop_node("woonbron")
        code, out, _err = run_cli(
            coordinator_cli.main,
            ["round", "run", served.coordinator_dir, "vroegsignalering", "--json"],
            capsys,
        )
        assert code == 1
        data = json.loads(out)
        assert data["state"] == "failed"
        assert "woonbron" in data["reason"]
        code, out, _ = run_cli(
            coordinator_cli.main,
            ["round", "show", served.coordinator_dir, data["round_id"]],
            capsys,
        )
        assert code == 0
        assert "failed" in out
        assert "woonbron" in out

    def test_round_list_shows_recent_rounds(self, served, capsys):
        """`round list --json` lists rounds newest first with their state."""
        served.run()
        code, out, _ = run_cli(
            coordinator_cli.main, ["round", "list", served.coordinator_dir, "--json"], capsys
        )
        assert code == 0
        rounds = json.loads(out)
        assert rounds[0]["state"] == "completed"

    def test_coordinator_not_running_is_explained(self, served, capsys, monkeypatch):
        """When nothing listens, the CLI says to start `psi-coordinator serve`."""
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            free = s.getsockname()[1]
        monkeypatch.setenv("KRUISPUNT_COORDINATOR_LISTEN", f"127.0.0.1:{free}")
        code, _, err = run_cli(
            coordinator_cli.main,
            ["round", "run", served.coordinator_dir, "vroegsignalering"],
            capsys,
        )
        assert code == 1
        assert "psi-coordinator serve" in err


class TestSetupCommands:
    def test_install_cert_refuses_another_partners_certificate(self, tmp_path, capsys):
        """Installing a certificate issued for another partner id fails with a clear message."""
        coord = tmp_path / "coord"
        assert coordinator_cli.main(["init", str(coord), "--network", "net"]) == 0
        for pid in ("aa", "bb"):
            assert (
                node_cli.main(
                    ["init", str(tmp_path / pid), "--partner", pid, "--name", pid.upper()]
                )
                == 0
            )
            assert (
                coordinator_cli.main(
                    [
                        "partner",
                        "add",
                        str(coord),
                        pid,
                        "--name",
                        pid,
                        "--address",
                        "127.0.0.1:9",
                        "--csr",
                        str(tmp_path / pid / "tls/node.csr"),
                        "--signing-key",
                        str(tmp_path / pid / "signing/node.pub"),
                        "--agreement-key",
                        str(tmp_path / pid / "signing/node.x25519.pub"),
                    ]
                )
                == 0
            )
        capsys.readouterr()
        code = node_cli.main(
            [
                "install-cert",
                str(tmp_path / "aa"),
                "--cert",
                str(coord / "partners/bb.crt"),
                "--ca",
                str(coord / "ca/ca.crt"),
                "--coordinator-key",
                str(coord / "signing/coordinator.pub"),
            ]
        )
        err = capsys.readouterr().err
        assert code == 1
        assert "not partner 'aa'" in err

    def test_partner_add_refuses_a_csr_for_another_id(self, tmp_path, capsys):
        """A CSR whose name is not the partner id being registered is refused."""
        coord = tmp_path / "coord"
        coordinator_cli.main(["init", str(coord), "--network", "net"])
        node_cli.main(["init", str(tmp_path / "aa"), "--partner", "aa", "--name", "A"])
        capsys.readouterr()
        code = coordinator_cli.main(
            [
                "partner",
                "add",
                str(coord),
                "cc",
                "--name",
                "C",
                "--address",
                "127.0.0.1:9",
                "--csr",
                str(tmp_path / "aa/tls/node.csr"),
                "--signing-key",
                str(tmp_path / "aa/signing/node.pub"),
                "--agreement-key",
                str(tmp_path / "aa/signing/node.x25519.pub"),
            ]
        )
        assert code == 1
        assert "CSR" in capsys.readouterr().err

    def test_init_refuses_an_existing_directory(self, tmp_path, capsys):
        """Running init twice never overwrites keys."""
        assert node_cli.main(["init", str(tmp_path / "n"), "--partner", "aa", "--name", "A"]) == 0
        key = (tmp_path / "n/tls/node.key").read_bytes()
        assert node_cli.main(["init", str(tmp_path / "n"), "--partner", "aa", "--name", "A"]) == 1
        assert "already holds a node" in capsys.readouterr().err
        assert (tmp_path / "n/tls/node.key").read_bytes() == key

    def test_private_keys_are_owner_only(self, tmp_path):
        """Every private key init writes is mode 0600."""
        coordinator_cli.main(["init", str(tmp_path / "c"), "--network", "net"])
        node_cli.main(["init", str(tmp_path / "n"), "--partner", "aa", "--name", "A"])
        keys = [
            *(tmp_path / "c").rglob("*.key"),
            *(tmp_path / "c").rglob("*.ed25519"),
            *(tmp_path / "n").rglob("*.key"),
            *(tmp_path / "n").rglob("*.ed25519"),
            *(tmp_path / "n").rglob("*.x25519"),
        ]
        assert len(keys) == 8  # the coordinator: CA, TLS, operator, manifest and audit keys
        for key in keys:
            assert key.stat().st_mode & 0o777 == 0o600, key


class TestAuditCommands:
    def test_audit_verify_report_and_export(self, served, capsys, tmp_path):
        """`audit verify` says OK, `audit report` writes the page, `export` filters by round."""
        summary = served.run()
        d = served.coordinator_dir
        code, out, _ = run_cli(coordinator_cli.main, ["audit", "verify", d], capsys)
        assert code == 0
        assert "audit log OK" in out
        page = tmp_path / "r.html"
        code, out, _ = run_cli(
            coordinator_cli.main,
            ["audit", "report", d, "--round", summary.round_id, "--out", page],
            capsys,
        )
        assert code == 0, out
        assert summary.round_id in page.read_text()
        export = tmp_path / "e.jsonl"
        code, _, _ = run_cli(
            coordinator_cli.main,
            ["audit", "export", d, "--round", summary.round_id, "--out", export],
            capsys,
        )
        assert code == 0
        rounds = {json.loads(line)["round_id"] for line in export.read_text().splitlines()}
        assert rounds == {summary.round_id}

    def test_audit_verify_fails_on_a_tampered_log(self, served, capsys):
        """An edited audit row makes `audit verify` exit 1 naming the first bad event."""
        import sqlite3

        served.run()
        db = sqlite3.connect(served.coordinator_dir / "coordinator.db")
        db.execute("DROP TRIGGER audit_events_no_update")
        db.execute("UPDATE audit_events SET actor='someone-else' WHERE seq=3")
        db.commit()
        db.close()
        code, out, _ = run_cli(
            coordinator_cli.main, ["audit", "verify", served.coordinator_dir], capsys
        )
        assert code == 1
        assert "BROKEN at event 3" in out


class TestDoctorCommands:
    def test_doctors_pass_on_a_healthy_network_and_name_a_dead_node(self, served, capsys):
        """Both doctors exit 0 on a healthy network; the coordinator's names a stopped node."""
        code, out, _ = run_cli(
            node_cli.main, ["doctor", served.node_dirs["gemeente"], "--offline"], capsys
        )
        assert code == 0, out
        code, out, _ = run_cli(
            coordinator_cli.main, ["doctor", served.coordinator_dir, "--json"], capsys
        )
        assert code == 0, out
        assert json.loads(out)
        served.stop_node("woonbron")
        code, out, _ = run_cli(coordinator_cli.main, ["doctor", served.coordinator_dir], capsys)
        assert code == 1
        assert "woonbron" in out
