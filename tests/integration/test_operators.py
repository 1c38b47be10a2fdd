"""Operators are people: personal certificates, removal, attribution, over real mTLS."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from typing import Any

import pytest
from cryptography import x509

from coordinator import cli as coordinator_cli
from coordinator.admin_client import AdminClient
from coordinator.config import load_coordinator_config
from coordinator.doctor import run_doctor
from coordinator.operators import list_operators
from coordinator.renew import renew_coordinator
from coordinator.server import create_server
from coordinator.store import Store
from kruispunt import pki
from kruispunt.doctor import OK, WARN
from kruispunt.rpc import PeerError
from tests.support.network import TestNetwork
from tests.support.report_pages import report

PARTNERS = ["gemeente", "woonbron"]


@pytest.fixture
def served(network_factory: Any, monkeypatch: pytest.MonkeyPatch) -> TestNetwork:
    """A 2-partner network with a purpose, the CLI pointed at the running coordinator."""
    net: TestNetwork = network_factory(PARTNERS, per_partner=10, overlaps={2: 2})
    net.add_purpose()
    monkeypatch.setenv("KRUISPUNT_COORDINATOR_LISTEN", f"127.0.0.1:{net.coordinator.port}")
    monkeypatch.delenv("KRUISPUNT_OPERATOR_DIR", raising=False)
    return net


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = coordinator_cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def add_operator(
    capsys: pytest.CaptureFixture[str], net: TestNetwork, name: str, *more: object
) -> tuple[int, str, str]:
    """`psi-coordinator operator add DIR NAME --ca-key ...`, with the network's offline CA key."""
    return cli(capsys, "operator", "add", net.coordinator_dir, name, "--ca-key", net.ca_key, *more)


def as_person(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Run the next CLI calls as `name` under sudo (SUDO_USER)."""
    monkeypatch.setenv("SUDO_USER", name)


def events(net: TestNetwork, name: str) -> list[Any]:
    return [e for e in net.coordinator.audit.events() if e.event == name]


class TestOperatorAdd:
    def test_add_issues_a_personal_certificate_and_registers_it(self, served, capsys):
        """`operator add` writes the person's own key (0600) and a certificate naming them
        (URI SAN kruispunt://testnet/operator/alice), registered and audited."""
        code, out, err = add_operator(capsys, served, "alice", "--json")
        assert code == 0, err
        data = json.loads(out)
        folder = served.coordinator_dir / "operators" / "alice"
        assert data["key"] == str(folder / "operator.key")
        assert data["certificate"] == str(folder / "operator.crt")
        assert (folder / "operator.key").stat().st_mode & 0o777 == 0o600
        cert = pki.load_certificate(folder / "operator.crt")
        identity = pki.verify_issued_by(cert, pki.load_certificate(served.config.tls_ca))
        assert identity == pki.Identity.operator("testnet", "alice")
        assert identity.uri == "kruispunt://testnet/operator/alice"
        key = pki.load_tls_key(folder / "operator.key")
        assert pki.same_public_key(key.public_key(), cert.public_key())
        assert data["cert_fingerprint"] == pki.fingerprint(cert)
        (added,) = [e for e in events(served, "operator.added") if e.details["operator"] == "alice"]
        assert added.details["cert_fingerprint"] == pki.fingerprint(cert)
        assert added.actor.startswith("operator:")

    def test_add_into_a_folder_the_command_names(self, served, capsys, tmp_path):
        """`--out` puts the key and certificate into another folder, created owner-only."""
        out_dir = tmp_path / "kees-keys"
        code, out, err = add_operator(capsys, served, "kees", "--out", out_dir)
        assert code == 0, err
        assert str(out_dir / "operator.key") in out
        assert (out_dir / "operator.key").stat().st_mode & 0o777 == 0o600
        assert out_dir.stat().st_mode & 0o777 == 0o700
        assert not (served.coordinator_dir / "operators" / "kees").exists()

    @pytest.mark.parametrize("name", ["Alice", "a_b", "a-", "x" * 64])
    def test_a_name_no_certificate_can_carry_is_refused_clearly(self, served, capsys, name):
        """An operator name that is not one DNS label is refused naming the rule."""
        code, out, err = add_operator(capsys, served, name)
        assert code == 2
        assert f"argument name: {name!r} is not a valid operator name" in err
        assert "lowercase letters, digits and hyphens" in err
        assert "Traceback" not in out + err

    def test_an_active_operator_is_not_issued_a_second_certificate(self, served, capsys):
        """A second `operator add` for the same person is refused; remove them first."""
        assert add_operator(capsys, served, "alice")[0] == 0
        code, _out, err = add_operator(capsys, served, "alice")
        assert code == 1
        assert "already holds a certificate" in err
        assert "operator remove" in err


class TestAttribution:
    def test_round_run_is_the_persons_by_name(self, served, capsys, monkeypatch):
        """alice runs a round with her own certificate: the round row, round.created and the
        report name operator:alice and her reason at the top."""
        assert add_operator(capsys, served, "alice")[0] == 0
        as_person(monkeypatch, "alice")
        code, out, err = cli(
            capsys,
            "round",
            "run",
            served.coordinator_dir,
            "vroegsignalering",
            "--reason",
            "weekly signalling",
            "--json",
        )
        assert code == 0, err
        round_id = json.loads(out)["round_id"]
        row = served.coordinator.store.round(round_id)
        assert row.initiated_by == "operator:alice"
        created = [
            e for e in served.coordinator.audit.events(round_id) if e.event == "round.created"
        ]
        assert created[0].actor == "operator:alice"
        assert created[0].details["reason"] == "weekly signalling"
        _summary, markup, page = report(served, round_id, served.root / "r.html")
        assert "Initiated by operator:alice Reason given weekly signalling" in page.text
        # At the top: before the network, purpose and state of the round.
        assert markup.index("Initiated by") < markup.index("Purpose (doelbinding)")

    def test_a_round_without_a_reason_says_so(self, served, capsys, monkeypatch):
        """The report says plainly when the initiator gave no reason."""
        summary = served.run()
        _summary, _markup, page = report(served, summary.round_id, served.root / "r.html")
        assert "Reason given no reason given" in page.text

    def test_a_cancelled_round_names_who_cancelled_and_why(self, served):
        """The report of a cancelled round names the operator who cancelled it and why."""
        # A cancellation as the admin service records it (the live path: test_cancel.py).
        summary = served.run()
        served.coordinator.audit.append(
            "round.cancelled",
            actor="operator:alice",
            on_behalf_of="testnet",
            access_point="admin-api test",
            action="E",
            round_id=summary.round_id,
            details={"reason": "wrong export", "phase": "blind"},
        )
        _summary, _markup, page = report(served, summary.round_id, served.root / "r.html")
        assert "Cancelled by operator:alice — wrong export" in page.text

    def test_local_actions_carry_the_sudo_user(self, served, capsys, monkeypatch, tmp_path):
        """Registry changes made through the CLI are the person's (SUDO_USER), never a uid."""
        as_person(monkeypatch, "erin")
        code, _out, err = cli(
            capsys,
            "partner",
            "update",
            served.coordinator_dir,
            "gemeente",
            "--address",
            f"127.0.0.1:{served.nodes['gemeente'].port}",
        )
        assert code == 0, err
        assert cli(capsys, "roster", "export", served.coordinator_dir)[0] == 0
        (changed,) = events(served, "partner.changed")[-1:]
        assert changed.actor == "operator:erin"
        actors = {e.actor for e in served.coordinator.audit.events()}
        assert not [a for a in actors if a.startswith("operator:uid")]

    def test_someone_elses_certificate_is_not_used(self, served, capsys, monkeypatch):
        """carol, who has no certificate of her own, is told so: the CLI never runs a round
        on the installing operator's certificate in her name."""
        as_person(monkeypatch, "carol")
        code, out, err = cli(capsys, "round", "run", served.coordinator_dir, "vroegsignalering")
        assert code == 1
        assert "no operator certificate for 'carol'" in err
        assert "operator add" in err
        assert "Traceback" not in out + err
        assert served.coordinator.store.rounds() == []

    def test_operator_dir_names_a_folder_outside_the_coordinator(
        self, served, capsys, monkeypatch, tmp_path
    ):
        """KRUISPUNT_OPERATOR_DIR points the CLI at the person's own folder."""
        keys = tmp_path / "kees"
        assert add_operator(capsys, served, "kees", "--out", keys)[0] == 0
        as_person(monkeypatch, "kees")
        monkeypatch.setenv("KRUISPUNT_OPERATOR_DIR", str(keys))
        code, out, err = cli(
            capsys, "round", "run", served.coordinator_dir, "vroegsignalering", "--json"
        )
        assert code == 0, err
        assert served.coordinator.store.round(json.loads(out)["round_id"]).initiated_by == (
            "operator:kees"
        )
        # Someone else's folder is refused, not used in their name.
        as_person(monkeypatch, "alice")
        code, _out, err = cli(capsys, "round", "run", served.coordinator_dir, "vroegsignalering")
        assert code == 1
        assert "is 'kees''s" in err


class TestOperatorRemove:
    def test_a_removed_operator_is_refused_from_then_on(self, served, capsys, monkeypatch):
        """After `operator remove`, the admin service refuses the person's certificate at
        once (UNAUTHENTICATED, audited); other operators go on."""
        for name in ("alice", "bob"):
            assert add_operator(capsys, served, name)[0] == 0
        folder = served.coordinator_dir / "operators" / "alice"
        kept = {p.name: p.read_bytes() for p in folder.iterdir()}
        as_person(monkeypatch, "alice")
        assert cli(capsys, "round", "run", served.coordinator_dir, "vroegsignalering")[0] == 0
        as_person(monkeypatch, "bob")
        code, out, err = cli(
            capsys, "operator", "remove", served.coordinator_dir, "alice", "--reason", "left"
        )
        assert code == 0, err
        assert "refuses their certificates from now on" in out
        assert not folder.exists()
        # Even with her files put back, alice's certificate opens nothing any more.
        folder.mkdir(mode=0o700)
        for name, data in kept.items():
            (folder / name).write_bytes(data)
        (folder / "operator.key").chmod(0o600)
        as_person(monkeypatch, "alice")
        code, out, err = cli(capsys, "round", "run", served.coordinator_dir, "vroegsignalering")
        assert code == 1
        assert "operator 'alice' was removed on" in err
        assert "Traceback" not in out + err
        (refused,) = events(served, "access.refused")
        assert refused.actor == "operator:alice"
        (removed,) = events(served, "operator.removed")
        assert removed.actor == "operator:bob"
        assert removed.details["reason"] == "left"
        as_person(monkeypatch, "bob")
        assert cli(capsys, "round", "run", served.coordinator_dir, "vroegsignalering")[0] == 0

    def test_an_operator_certificate_not_registered_is_refused(self, served, capsys):
        """A certificate the network CA signed but `operator add` never registered (someone
        with the CA key made it) is refused by the admin service."""
        config = served.config
        key = pki.generate_tls_key()
        cert = pki.issue_for_key(
            pki.load_tls_key(config.ca_key),
            pki.load_certificate(config.tls_ca),
            key.public_key(),
            pki.Identity.operator(config.network, "mallory"),
        )
        folder = served.root / "mallory"
        folder.mkdir()
        pki.write_private_key(folder / "operator.key", key)
        pki.write_pem(folder / "operator.crt", cert)
        served_config = load_coordinator_config(
            served.coordinator_dir,
            env={"KRUISPUNT_COORDINATOR_LISTEN": f"127.0.0.1:{served.coordinator.port}"},
        )
        with (
            AdminClient(
                served_config, key=folder / "operator.key", cert=folder / "operator.crt"
            ) as client,
            pytest.raises(PeerError) as err,
        ):
            list(client.run_round("vroegsignalering"))
        assert err.value.status.name == "UNAUTHENTICATED"
        assert "is not registered at this coordinator" in err.value.details
        assert served.coordinator.store.rounds() == []

    def test_removing_twice_or_nobody_is_a_clear_error(self, served, capsys):
        """Removing an unknown or already removed operator says which."""
        code, _out, err = cli(capsys, "operator", "remove", served.coordinator_dir, "nobody")
        assert code == 1
        assert "no operator 'nobody'" in err
        assert add_operator(capsys, served, "alice")[0] == 0
        assert cli(capsys, "operator", "remove", served.coordinator_dir, "alice")[0] == 0
        code, _out, err = cli(capsys, "operator", "remove", served.coordinator_dir, "alice")
        assert code == 1
        assert "was already removed on" in err

    def test_a_removed_operator_can_be_issued_a_new_certificate(self, served, capsys, monkeypatch):
        """A person removed and added again gets a new certificate; the old stays refused."""
        assert add_operator(capsys, served, "alice")[0] == 0
        folder = served.coordinator_dir / "operators" / "alice"
        old = (folder / "operator.crt").read_bytes()
        assert cli(capsys, "operator", "remove", served.coordinator_dir, "alice")[0] == 0
        assert add_operator(capsys, served, "alice")[0] == 0
        assert (folder / "operator.crt").read_bytes() != old
        as_person(monkeypatch, "alice")
        assert cli(capsys, "round", "run", served.coordinator_dir, "vroegsignalering")[0] == 0
        store = served.coordinator.store
        old_fp = pki.fingerprint(x509.load_pem_x509_certificate(old))
        assert store.operator_cert(old_fp) is not None
        assert not store.operator_cert(old_fp).active


class TestOperatorList:
    def test_list_shows_active_and_removed_operators(self, served, capsys, monkeypatch):
        """`operator list` names every operator, who added and who removed them."""
        as_person(monkeypatch, "bob")
        for name in ("alice", "kees"):
            assert add_operator(capsys, served, name)[0] == 0
        assert cli(capsys, "operator", "remove", served.coordinator_dir, "kees")[0] == 0
        code, out, _err = cli(capsys, "operator", "list", served.coordinator_dir, "--json")
        assert code == 0
        rows = {r["operator"]: r for r in json.loads(out)}
        assert rows["alice"]["active"] is True
        assert rows["alice"]["added_by"] == "operator:bob"
        assert rows["kees"]["active"] is False
        assert rows["kees"]["removed_by"] == "operator:bob"
        code, out, _err = cli(capsys, "operator", "list", served.coordinator_dir)
        assert "alice" in out
        assert "REMOVED" in out


class TestFirstOperator:
    def test_init_names_the_first_operator_after_the_installing_user(
        self, tmp_path, capsys, monkeypatch
    ):
        """`init` under sudo issues and registers the installing user's own certificate."""
        monkeypatch.setenv("SUDO_USER", "dora")
        code, out, err = cli(capsys, "init", tmp_path / "c", "--network", "net", "--json")
        assert code == 0, err
        assert json.loads(out)["operator"] == "dora"
        config = load_coordinator_config(tmp_path / "c")
        cert = pki.load_certificate(config.operator_cert)
        assert pki.identity_from_certificate(cert) == pki.Identity.operator("net", "dora")
        (status,) = list_operators(config)
        assert (status.name, status.active, status.fingerprint) == (
            "dora",
            True,
            pki.fingerprint(cert),
        )
        assert status.added_by == "operator:dora"

    def test_init_takes_an_explicit_first_operator(self, tmp_path, capsys):
        """`init --operator NAME` names the first operator explicitly."""
        code, _out, err = cli(
            capsys, "init", tmp_path / "c", "--network", "net", "--operator", "beheer-jan"
        )
        assert code == 0, err
        config = load_coordinator_config(tmp_path / "c")
        assert [o.name for o in list_operators(config)] == ["beheer-jan"]

    def test_renewed_configured_certificate_stays_admitted(self, served, capsys):
        """`renew` re-issues the first operator's certificate and registers the new one."""
        config = served.config
        before = pki.fingerprint(pki.load_certificate(config.operator_cert))
        renew_coordinator(config, ca_key_path=served.ca_key, actor="operator:test")
        after = pki.fingerprint(pki.load_certificate(config.operator_cert))
        assert after != before
        store = served.coordinator.store
        assert store.operator_cert(after) is not None
        assert store.operator_cert(after).active
        code, _out, err = cli(capsys, "round", "run", served.coordinator_dir, "vroegsignalering")
        assert code == 0, err

    def test_a_coordinator_from_before_the_registry_adopts_its_operator(self, served, capsys):
        """An older database without registered operators: the serving coordinator adopts
        the configured certificate once (audited), so its operator is not locked out."""
        served.coordinator.stop(grace=0)
        served.coordinator.store.close()
        with closing(sqlite3.connect(served.config.database)) as db:
            db.execute("DROP TABLE operators")
            db.commit()
        config = load_coordinator_config(
            served.coordinator_dir, env={"KRUISPUNT_COORDINATOR_LISTEN": "127.0.0.1:0"}
        )
        served.coordinator = create_server(config)
        store = served.coordinator.store
        (adopted,) = store.operator_certs()
        assert adopted.cert_fingerprint == pki.fingerprint(
            pki.load_certificate(config.operator_cert)
        )
        assert adopted.added_by == "coordinator"
        added = events(served, "operator.added")[-1]
        assert "adopted" in added.details
        with closing(Store(config.database, readonly=True)) as ro:
            assert len(ro.operator_certs()) == 1


def test_operators_folder_is_listed_in_help() -> None:
    """The operator commands are registered like every other (`@command`)."""
    words = {" ".join(c.words) for c in coordinator_cli.COMMANDS}
    assert {"operator add", "operator remove", "operator list"} <= words


class TestDoctor:
    def test_doctor_names_the_active_operators(self, served, capsys):
        """The doctor lists who may use the admin service."""
        assert add_operator(capsys, served, "alice")[0] == 0
        check = run_doctor(served.coordinator_dir, check_partners=False).by_name("operators")
        first = pki.identity_from_certificate(pki.load_certificate(served.config.operator_cert))
        assert check.status == OK
        assert check.detail == f"2 active operator(s): {', '.join(sorted(['alice', first.name]))}"

    def test_doctor_warns_when_inits_certificate_is_refused(self, served, capsys):
        """With init's operator removed, the doctor warns that its certificate is refused."""
        first = pki.identity_from_certificate(pki.load_certificate(served.config.operator_cert))
        assert add_operator(capsys, served, "alice")[0] == 0
        assert cli(capsys, "operator", "remove", served.coordinator_dir, first.name)[0] == 0
        report = run_doctor(served.coordinator_dir, check_partners=False)
        check = report.by_name("operators")
        assert check.status == WARN
        assert "1 active operator(s): alice" in check.detail
        assert "the admin service refuses it" in check.detail
        assert cli(capsys, "operator", "remove", served.coordinator_dir, "alice")[0] == 0
        check = run_doctor(served.coordinator_dir, check_partners=False).by_name("operators")
        assert check.status == WARN
        assert "nobody can run or cancel rounds" in check.detail


class TestNodeActions:
    def test_a_node_operators_roster_accept_is_the_sudo_users(self, served, capsys, monkeypatch):
        """`psi-node roster accept` under sudo records the person, never a uid."""
        from psi_node import cli as node_cli
        from psi_node.audit import NodeAudit

        as_person(monkeypatch, "fenna")
        roster = served.coordinator_dir / "roster.toml"
        digest = json.loads(cli(capsys, "roster", "show", served.coordinator_dir, "--json")[1])
        code = node_cli.main(
            [
                "roster",
                "accept",
                str(served.node_dirs["gemeente"]),
                str(roster),
                "--digest",
                digest["digest"],
            ]
        )
        assert code == 0, capsys.readouterr().err
        config = served.node_config("gemeente")
        key = served.nodes["gemeente"].rounds.signing_key
        events = NodeAudit(config.audit_log, key).events()
        assert events[-1].event == "roster.accepted"
        assert events[-1].actor == "operator:fenna"
