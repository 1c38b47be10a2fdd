"""The two CLIs as operators use them: exit codes and messages, against real servers."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest

from coordinator import cli as coordinator_cli
from kruispunt import pki
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
                        "--ca-key",
                        str(coord / "ca-offline/ca.key"),
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
                "--ca-key",
                str(coord / "ca-offline/ca.key"),
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

    def test_audit_report_is_dutch_unless_asked_for_english(self, served, capsys, tmp_path):
        """`audit report` writes Dutch by default, English with --lang en; --json says which."""
        summary = served.run()
        d = served.coordinator_dir
        dutch, english = tmp_path / "nl.html", tmp_path / "en.html"
        code, out, _ = run_cli(
            coordinator_cli.main,
            ["audit", "report", d, "--round", summary.round_id, "--out", dutch, "--json"],
            capsys,
        )
        assert code == 0, out
        assert json.loads(out)["lang"] == "nl"
        assert json.loads(out)["pdf"] is None
        assert "Toestemming per partner" in dutch.read_text(encoding="utf-8")
        code, out, _ = run_cli(
            coordinator_cli.main,
            ["audit", "report", d, "--round", summary.round_id, "--out", english, "--lang", "en"],
            capsys,
        )
        assert code == 0, out
        assert "Consent per partner" in english.read_text(encoding="utf-8")
        code, _out, err = run_cli(
            coordinator_cli.main,
            ["audit", "report", d, "--round", summary.round_id, "--out", english, "--lang", "de"],
            capsys,
        )
        assert code == 2
        assert "invalid choice: 'de'" in err

    def test_audit_report_pdf_without_chromium_names_what_is_missing(
        self, served, capsys, tmp_path, monkeypatch
    ):
        """--pdf with no Chromium on PATH: exit 1 naming the browsers looked for and how to
        install one; the HTML page is written all the same, no traceback."""
        summary = served.run()
        page = tmp_path / "r.html"
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
        code, out, err = run_cli(
            coordinator_cli.main,
            ["audit", "report", served.coordinator_dir, "--round", summary.round_id,
             "--out", page, "--pdf"],
            capsys,
        )  # fmt: skip
        assert code == 1, out
        assert "--pdf needs headless Chromium" in err
        assert "chromium, chromium-browser, google-chrome" in err
        assert "apt-get install chromium" in err
        assert "Traceback" not in err
        assert page.is_file()
        assert not (tmp_path / "r.pdf").exists()

    def test_audit_report_pdf_may_not_overwrite_the_page(self, served, capsys, tmp_path):
        """--pdf naming the --out file is refused before anything is written."""
        summary = served.run()
        page = tmp_path / "r.html"
        code, _out, err = run_cli(
            coordinator_cli.main,
            ["audit", "report", served.coordinator_dir, "--round", summary.round_id,
             "--out", page, "--pdf", page],
            capsys,
        )  # fmt: skip
        assert code == 1
        assert "the same file as --out" in err
        assert not page.exists()

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


class TestOfflineCaKey:
    """`init` puts the CA key apart; every command that issues a certificate asks for it."""

    @pytest.fixture
    def coord(self, tmp_path, capsys):
        coord = tmp_path / "coord"
        assert coordinator_cli.main(["init", str(coord), "--network", "net"]) == 0
        out = capsys.readouterr().out
        assert f"network CA key:       {coord.resolve() / 'ca-offline/ca.key'}" in out
        assert "Move the CA key offline now" in out
        assert node_cli.main(["init", str(tmp_path / "aa"), "--partner", "aa", "--name", "A"]) == 0
        capsys.readouterr()
        return coord

    def add(self, coord, tmp_path, *extra):
        return coordinator_cli.main(
            [
                "partner",
                "add",
                str(coord),
                "aa",
                "--name",
                "A",
                "--address",
                "127.0.0.1:9",
                "--csr",
                str(tmp_path / "aa/tls/node.csr"),
                "--signing-key",
                str(tmp_path / "aa/signing/node.pub"),
                "--agreement-key",
                str(tmp_path / "aa/signing/node.x25519.pub"),
                *extra,
            ]
        )

    def test_init_writes_the_ca_key_to_its_own_folder(self, coord):
        """The CA key is in DIR/ca-offline (0700 folder, 0600 key), not next to ca.crt."""
        key = coord / "ca-offline/ca.key"
        assert key.is_file()
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
        assert not (coord / "ca/ca.key").exists()

    def test_init_can_write_it_to_removable_media(self, tmp_path, capsys):
        """--ca-key-dir puts the key where the operator says, e.g. a mounted stick."""
        stick = tmp_path / "stick"
        code = coordinator_cli.main(
            ["init", str(tmp_path / "c"), "--network", "net", "--ca-key-dir", str(stick)]
        )
        assert code == 0
        assert (stick / "ca.key").is_file()
        assert not (tmp_path / "c/ca-offline").exists()

    def test_partner_add_without_ca_key_names_the_option(self, coord, tmp_path, capsys):
        """No --ca-key: exit 1, naming the option and where init wrote the key; nothing issued."""
        assert self.add(coord, tmp_path) == 1
        err = capsys.readouterr().err
        assert "partner add needs the network CA key: pass --ca-key PATH" in err
        assert "Traceback" not in err
        assert not (coord / "partners/aa.crt").exists()

    def test_partner_add_with_a_missing_file_says_so(self, coord, tmp_path, capsys):
        """--ca-key naming no file: exit 1, the path and the likely cause."""
        assert self.add(coord, tmp_path, "--ca-key", str(tmp_path / "nothing.key")) == 1
        assert "nothing.key: no CA key there (--ca-key)" in capsys.readouterr().err

    def test_partner_add_with_another_key_is_refused(self, coord, tmp_path, capsys):
        """--ca-key naming a key that is not the network CA's: refused, naming the CA file."""
        other = tmp_path / "other.key"
        pki.write_private_key(other, pki.generate_tls_key())
        assert self.add(coord, tmp_path, "--ca-key", str(other)) == 1
        err = capsys.readouterr().err
        assert "other.key: not the key of the network CA" in err
        assert not (coord / "partners/aa.crt").exists()

    def test_partner_add_with_the_ca_key_issues(self, coord, tmp_path, capsys):
        """With the right --ca-key the partner is registered."""
        assert self.add(coord, tmp_path, "--ca-key", str(coord / "ca-offline/ca.key")) == 0
        assert (coord / "partners/aa.crt").is_file()

    @pytest.mark.parametrize(
        ("argv", "task"),
        [
            (["operator", "add", "{coord}", "alice"], "operator add"),
            (["renew", "{coord}"], "renew"),
        ],
    )
    def test_other_issuing_commands_ask_for_it_too(self, coord, capsys, argv, task):
        """operator add and renew without --ca-key fail the same clear way."""
        code = coordinator_cli.main([a.format(coord=coord) for a in argv])
        assert code == 1
        assert f"{task} needs the network CA key: pass --ca-key PATH" in capsys.readouterr().err

    def test_partner_renew_asks_for_it(self, coord, tmp_path, capsys):
        """partner renew without --ca-key fails the same clear way."""
        assert self.add(coord, tmp_path, "--ca-key", str(coord / "ca-offline/ca.key")) == 0
        capsys.readouterr()
        assert coordinator_cli.main(["partner", "renew", str(coord), "aa"]) == 1
        err = capsys.readouterr().err
        assert "partner renew needs the network CA key: pass --ca-key PATH" in err
