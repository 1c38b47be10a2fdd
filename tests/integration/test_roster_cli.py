"""`psi-coordinator roster export/show` and `psi-node roster accept/show` as operators use them."""

from __future__ import annotations

import json

import pytest

from coordinator import cli as coordinator_cli
from kruispunt.roster import load_roster
from psi_node import cli as node_cli
from psi_node.provision import init_node, install_certificate
from tests.support.network import TestNetwork

PARTNERS = ["gemeente", "woonbron"]


@pytest.fixture
def net(network_factory) -> TestNetwork:
    """Two partners with roster version 1 accepted; nothing started."""
    return network_factory(PARTNERS, start=False, per_partner=10, overlaps={2: 2})


def run_cli(main, argv, capsys):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def join_by_cli(net: TestNetwork, pid: str, capsys) -> None:
    """A third partner registered through `psi-coordinator partner add`."""
    node_dir = net.root / "nodes" / pid
    res = init_node(node_dir, pid, f"Organisatie {pid}")
    code, _, err = run_cli(
        coordinator_cli.main,
        [
            "partner",
            "add",
            net.coordinator_dir,
            pid,
            "--name",
            f"Organisatie {pid}",
            "--address",
            "127.0.0.1:9",
            "--csr",
            res.csr,
            "--signing-key",
            res.signing_public_key,
            "--agreement-key",
            res.agreement_public_key,
            "--ca-key",
            net.ca_key,
        ],
        capsys,
    )
    assert code == 0, err
    install_certificate(
        node_dir,
        cert_path=net.coordinator_dir / "partners" / f"{pid}.crt",
        ca_path=net.config.tls_ca,
        coordinator_key_path=net.config.signing_public_key,
        partner_id=pid,
    )
    net.node_dirs[pid] = node_dir


class TestCoordinatorRoster:
    def test_export_json_after_a_partner_joins(self, net, capsys):
        """`roster export --json`: path, version 2, digest both ways, the partner added."""
        join_by_cli(net, "zayaz", capsys)
        code, out, err = run_cli(
            coordinator_cli.main, ["roster", "export", net.coordinator_dir, "--json"], capsys
        )
        assert code == 0, err
        data = json.loads(out)
        roster = load_roster(data["path"])
        assert data["path"] == str(net.coordinator_dir / "roster.toml")
        assert data["version"] == roster.version == 2
        assert data["digest"] == roster.digest_hex
        assert data["digest_grouped"].replace(" ", "") == roster.digest_hex
        assert len(data["digest_grouped"].split(" ")) == 16
        assert [p["id"] for p in data["partners"]] == ["gemeente", "woonbron", "zayaz"]
        assert any(c.startswith("partner added: zayaz") for c in data["changes"])

    def test_export_text_prints_digest_for_reading_aloud(self, net, capsys):
        """The text names the file and version, the grouped and the plain digest, the changes."""
        join_by_cli(net, "zayaz", capsys)
        code, out, _ = run_cli(
            coordinator_cli.main, ["roster", "export", net.coordinator_dir], capsys
        )
        assert code == 0
        roster = load_roster(net.coordinator_dir / "roster.toml")
        grouped = " ".join(roster.digest_hex[i : i + 4] for i in range(0, 64, 4))
        assert f"wrote {net.coordinator_dir / 'roster.toml'}" in out
        assert "roster version 2 of network 'testnet', 3 partners" in out
        assert f"digest (read aloud): {grouped}" in out
        assert f"digest:              {roster.digest_hex}" in out
        assert "  - partner added: zayaz (Organisatie zayaz)" in out
        assert "psi-node roster accept" in out

    def test_export_without_changes_says_so(self, net, capsys):
        """An export with nothing new says the file is up to date and lists no changes."""
        code, out, _ = run_cli(
            coordinator_cli.main, ["roster", "export", net.coordinator_dir, "--json"], capsys
        )
        assert code == 0
        data = json.loads(out)
        assert data["version"] == 1
        assert data["changes"] == []
        code, out, _ = run_cli(
            coordinator_cli.main, ["roster", "export", net.coordinator_dir], capsys
        )
        assert "is up to date: nothing changed" in out

    def test_show_prints_the_exported_roster(self, net, capsys):
        """`roster show --json` gives the file's version, digest and partners' keys."""
        code, out, _ = run_cli(
            coordinator_cli.main, ["roster", "show", net.coordinator_dir, "--json"], capsys
        )
        assert code == 0
        data = json.loads(out)
        roster = load_roster(net.coordinator_dir / "roster.toml")
        assert data["digest"] == roster.digest_hex
        assert {p["id"]: p["agreement_key"] for p in data["partners"]} == {
            p.id: p.agreement_key.hex() for p in roster.partners
        }
        code, out, _ = run_cli(
            coordinator_cli.main, ["roster", "show", net.coordinator_dir], capsys
        )
        assert code == 0
        assert "gemeente" in out
        assert roster.digest_hex in out

    def test_show_without_a_roster_says_how_to_write_one(self, net, capsys):
        """No roster.toml: exit 1 and the export command, no traceback."""
        (net.coordinator_dir / "roster.toml").unlink()
        code, out, err = run_cli(
            coordinator_cli.main, ["roster", "show", net.coordinator_dir], capsys
        )
        assert code == 1
        assert "psi-coordinator roster export" in err
        assert "Traceback" not in out + err

    def test_export_in_a_directory_that_is_no_coordinator(self, tmp_path, capsys):
        """A wrong DIR is one clear message naming coordinator.toml."""
        code, out, err = run_cli(coordinator_cli.main, ["roster", "export", tmp_path], capsys)
        assert code == 1
        assert "coordinator.toml" in err
        assert "Traceback" not in out + err

    def test_partner_list_shows_the_agreement_key_id(self, net, capsys):
        """`partner list --json` names each partner's agreement key by its id."""
        import hashlib

        code, out, _ = run_cli(
            coordinator_cli.main, ["partner", "list", net.coordinator_dir, "--json"], capsys
        )
        assert code == 0
        roster = load_roster(net.coordinator_dir / "roster.toml")
        assert {p["id"]: p["agreement_key_id"] for p in json.loads(out)} == {
            p.id: hashlib.sha256(p.agreement_key).hexdigest()[:16] for p in roster.partners
        }

    def test_partner_add_needs_the_agreement_key(self, net, capsys):
        """--agreement-key is required: argparse says so and main returns 2."""
        code = coordinator_cli.main(
            [
                "partner",
                "add",
                str(net.coordinator_dir),
                "zayaz",
                "--name",
                "Z",
                "--address",
                "127.0.0.1:9",
                "--csr",
                "x.csr",
                "--signing-key",
                "x.pub",
            ]
        )
        assert code == 2
        assert "--agreement-key" in capsys.readouterr().err


class TestNodeRoster:
    def test_accept_json_after_a_partner_joins(self, net, capsys):
        """`roster accept --json` with the grouped digest: version 2 and the partner added."""
        join_by_cli(net, "zayaz", capsys)
        code, out, _ = run_cli(
            coordinator_cli.main, ["roster", "export", net.coordinator_dir, "--json"], capsys
        )
        exported = json.loads(out)
        code, out, err = run_cli(
            node_cli.main,
            [
                "roster",
                "accept",
                net.node_dirs["gemeente"],
                exported["path"],
                "--digest",
                exported["digest_grouped"].upper(),
                "--json",
            ],
            capsys,
        )
        assert code == 0, err
        data = json.loads(out)
        assert data["version"] == 2
        assert data["digest"] == exported["digest"]
        assert data["changes"] == exported["changes"]
        assert data["accepted"] == str(net.node_config("gemeente").state_dir / "roster.toml")

    def test_accept_text_prints_the_changes(self, net, capsys):
        """Without --json the operator reads the version, the digest and every change."""
        join_by_cli(net, "zayaz", capsys)
        run_cli(coordinator_cli.main, ["roster", "export", net.coordinator_dir], capsys)
        roster = load_roster(net.coordinator_dir / "roster.toml")
        code, out, _ = run_cli(
            node_cli.main,
            [
                "roster",
                "accept",
                net.node_dirs["woonbron"],
                net.coordinator_dir / "roster.toml",
                "--digest",
                roster.digest_hex,
            ],
            capsys,
        )
        assert code == 0
        assert "accepted roster version 2" in out
        assert roster.digest_hex in out
        assert "  - partner added: zayaz (Organisatie zayaz)" in out

    def test_show_prints_the_accepted_roster(self, net, capsys):
        """`roster show --json` is the accepted roster; the text has its digest."""
        roster = load_roster(net.coordinator_dir / "roster.toml")
        code, out, _ = run_cli(
            node_cli.main, ["roster", "show", net.node_dirs["gemeente"], "--json"], capsys
        )
        assert code == 0
        data = json.loads(out)
        assert data["version"] == 1
        assert data["digest"] == roster.digest_hex
        code, out, _ = run_cli(node_cli.main, ["roster", "show", net.node_dirs["gemeente"]], capsys)
        assert code == 0
        assert roster.digest_hex in out

    def test_show_without_a_roster_says_how_to_accept_one(self, net, capsys):
        """No accepted roster: exit 1 and the accept command."""
        (net.node_config("gemeente").state_dir / "roster.toml").unlink()
        code, out, err = run_cli(
            node_cli.main, ["roster", "show", net.node_dirs["gemeente"]], capsys
        )
        assert code == 1
        assert "no roster accepted: psi-node roster accept" in err
        assert "Traceback" not in out + err

    @pytest.mark.parametrize(
        ("digest", "message"),
        [
            ("12ab", "must be 64 hex digits"),
            ("ff" * 32, "do not accept it until the two agree"),
        ],
    )
    def test_bad_digest_is_one_clear_message(self, net, capsys, digest, message):
        """A malformed or wrong digest exits 1 with the reason; the accepted roster stays."""
        state = net.node_config("gemeente").state_dir / "roster.toml"
        before = state.read_bytes()
        code, out, err = run_cli(
            node_cli.main,
            [
                "roster",
                "accept",
                net.node_dirs["gemeente"],
                net.coordinator_dir / "roster.toml",
                "--digest",
                digest,
            ],
            capsys,
        )
        assert code == 1
        assert message in err
        assert "Traceback" not in out + err
        assert state.read_bytes() == before

    def test_missing_roster_file_is_named(self, net, tmp_path, capsys):
        """A roster file that is not there is named in the message."""
        code, out, err = run_cli(
            node_cli.main,
            [
                "roster",
                "accept",
                net.node_dirs["gemeente"],
                tmp_path / "nope.toml",
                "--digest",
                "00" * 32,
            ],
            capsys,
        )
        assert code == 1
        assert f"{tmp_path / 'nope.toml'}: no such roster file" in err
        assert "Traceback" not in out + err

    def test_accept_in_a_directory_that_is_no_node(self, net, tmp_path, capsys):
        """A wrong DIR is one clear message naming node.toml."""
        roster = load_roster(net.coordinator_dir / "roster.toml")
        code, out, err = run_cli(
            node_cli.main,
            [
                "roster",
                "accept",
                tmp_path,
                net.coordinator_dir / "roster.toml",
                "--digest",
                roster.digest_hex,
            ],
            capsys,
        )
        assert code == 1
        assert "node.toml" in err
        assert "Traceback" not in out + err

    def test_init_names_the_agreement_key_to_send(self, tmp_path, capsys):
        """`psi-node init` lists node.x25519.pub among the files for the coordinator."""
        code, out, _ = run_cli(
            node_cli.main, ["init", tmp_path / "n", "--partner", "aa", "--name", "A"], capsys
        )
        assert code == 0
        assert "Send these three files" in out
        assert str(tmp_path / "n" / "signing/node.x25519.pub") in out
        assert "signing/node.x25519\n" in out  # among the private keys never sent
        code, out, _ = run_cli(
            node_cli.main,
            ["init", tmp_path / "m", "--partner", "bb", "--name", "B", "--json"],
            capsys,
        )
        assert json.loads(out)["agreement_public_key"] == str(
            tmp_path / "m/signing/node.x25519.pub"
        )
        assert (tmp_path / "m/signing/node.x25519").stat().st_mode & 0o777 == 0o600
        assert 'agreement_key = "signing/node.x25519"' in (tmp_path / "m/node.toml").read_text()
