"""The doctors catch each misconfiguration; renewal keeps a network working; systemd units hold."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from coordinator.audit import CoordinatorAudit
from coordinator.certs import certificates as coordinator_certificates
from coordinator.doctor import run_doctor as coordinator_doctor
from coordinator.renew import renew_coordinator, renew_partner
from coordinator.store import Store
from kruispunt import expiry, pki, signing
from kruispunt.doctor import FAIL, OK, WARN, Check, DoctorReport
from kruispunt.errors import ConfigError
from kruispunt.purpose import Purpose
from psi_node.audit import NodeAudit
from psi_node.certs import certificates as node_certificates
from psi_node.doctor import run_doctor as node_doctor
from psi_node.provision import install_certificate
from tests.support.network import NETWORK, TestNetwork
from tests.support.paths import REPO

PARTNERS = ["gemeente", "woonbron"]
SMALL = {"per_partner": 20, "overlaps": {2: 5}}
UNITS = REPO / "deploy" / "systemd"


def statuses(report: DoctorReport) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


def failures(report: DoctorReport) -> dict[str, str]:
    return {c.name: c.detail for c in report.checks if c.status == FAIL}


def leaf_for(
    net: TestNetwork, public_key: object, partner: str, **kwargs: object
) -> x509.Certificate:
    """A certificate from the test network's CA for `partner` over `public_key`."""
    config = net.config
    return pki.issue_for_key(
        pki.load_tls_key(config.ca_key),
        pki.load_certificate(config.tls_ca),
        public_key,  # type: ignore[arg-type]
        pki.Identity.partner(NETWORK, partner),
        **kwargs,  # type: ignore[arg-type]
    )


def node_key(net: TestNetwork, pid: str = "gemeente") -> pki.PrivateKey:
    return pki.load_tls_key(net.node_dirs[pid] / "tls/node.key")


def set_results_path(node_dir: Path, value: str) -> None:
    text = (node_dir / "node.toml").read_text()
    (node_dir / "node.toml").write_text(text.replace('results = "results"', f'results = "{value}"'))


def served_certificate(port: int, net: TestNetwork) -> x509.Certificate:
    """The certificate a node presents on `port`, fetched with the coordinator's credentials."""
    config = net.config
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cafile=str(config.tls_ca))
    context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


@pytest.fixture
def net(network_factory) -> TestNetwork:
    """Two partners and a coordinator, set up but not started."""
    return network_factory(PARTNERS, start=False, **SMALL)


@pytest.fixture
def node_dir(net: TestNetwork) -> Path:
    return net.node_dirs["gemeente"]


@pytest.fixture
def refusing_listener() -> Iterator[int]:
    """A TCP port held by something that is not a node: it accepts and hangs up."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    server.close()


class TestReport:
    def test_render_aligns_one_line_per_check_and_states_the_exit_code(self):
        """render() gives one aligned line per check and a summary naming the exit code."""
        report = DoctorReport("psi-node doctor /srv/kruispunt")
        report.add("tls key", OK, "owner-only")
        report.add("tls certificate expiry", WARN, "expires in 10 days")
        report.add("audit log", FAIL, "does not verify")
        lines = report.render().splitlines()
        assert lines[0] == "psi-node doctor /srv/kruispunt"
        assert [line.split()[0] for line in lines[1:4]] == ["OK", "WARN", "FAIL"]
        columns = {line.index(c.detail) for line, c in zip(lines[1:4], report.checks, strict=True)}
        assert len(columns) == 1
        assert lines[-1] == "1 check ok, 1 warning, 1 failure: exit code 1"

    def test_warnings_alone_exit_zero(self):
        """Warnings are reported but only a failure makes the report fail (exit code 1)."""
        report = DoctorReport("t")
        report.add("a", OK, "fine")
        report.add("b", WARN, "soon")
        assert report.ok
        assert report.exit_code == 0
        report.add("c", FAIL, "broken")
        assert not report.ok
        assert report.exit_code == 1

    def test_as_dict_is_json_ready(self):
        """as_dict() carries ok, counts and every check for --json."""
        report = DoctorReport("t")
        report.add("a", WARN, "soon")
        data = json.loads(json.dumps(report.as_dict()))
        assert data == {
            "title": "t",
            "ok": True,
            "counts": {"ok": 0, "warn": 1, "fail": 0},
            "checks": [{"name": "a", "status": "warn", "detail": "soon"}],
        }

    def test_detail_that_looks_like_an_identifier_is_redacted(self):
        """A detail holding a BSN- or postcode-like value is replaced as a whole."""
        for detail in ("row with 111222333 is bad", "address 5211 AB is bad"):
            check = Check("x", FAIL, detail)
            assert "111222333" not in check.detail
            assert "5211" not in check.detail
            assert check.detail.startswith("[redacted")

    def test_unknown_status_is_refused(self):
        """A check status other than ok, warn or fail is a ValueError."""
        with pytest.raises(ValueError, match="status"):
            Check("x", "bad", "y")  # type: ignore[arg-type]


class TestExpiryWarnings:
    def test_warns_a_month_ahead_and_after_expiry(self, net):
        """A certificate within 30 days, or expired, yields a line; a fresh one none."""
        key = node_key(net)
        now = datetime.now(UTC)
        certs = {
            "soon": leaf_for(net, key.public_key(), "gemeente", days=10, now=now),
            "fresh": leaf_for(net, key.public_key(), "gemeente", days=397, now=now),
        }
        lines = expiry.expiry_warnings(certs, now)
        assert len(lines) == 1
        assert lines[0].startswith("certificate soon expires in 9 days")
        later = expiry.expiry_warnings(certs, now + timedelta(days=11))
        assert later[0].startswith("certificate soon expired on")
        assert expiry.expiry_warnings({"fresh": certs["fresh"]}, now) == []

    def test_reminder_repeats_once_a_day_and_resets_after_renewal(self, net):
        """A per-minute loop logs each warning once a day; a renewed certificate is forgotten."""
        key = node_key(net)
        now = datetime.now(UTC)
        soon = leaf_for(net, key.public_key(), "gemeente", days=10, now=now)
        fresh = leaf_for(net, key.public_key(), "gemeente", days=397, now=now)
        reminder = expiry.ExpiryReminder()
        ticks = [now + timedelta(minutes=m) for m in range(0, 2 * 24 * 60 + 1, 60)]
        said = [t for t in ticks if reminder.warnings({"node": soon}, t)]
        assert said == [now, now + timedelta(days=1), now + timedelta(days=2)]
        assert reminder.warnings({"node": fresh}, now + timedelta(days=2, hours=1)) == []
        assert reminder.warnings({"node": soon}, now + timedelta(days=2, hours=2))

    def test_serving_processes_find_their_certificates(self, net, node_dir):
        """Node and coordinator list every certificate they should watch, by label."""
        node = node_certificates(load_node(node_dir))
        assert sorted(node) == sorted(
            [
                f"{node_dir.resolve()}/tls/node.crt (partner gemeente)",
                f"{node_dir.resolve()}/tls/ca.crt (network CA)",
            ]
        )
        coord = coordinator_certificates(net.config)
        assert {"of partner gemeente", "of partner woonbron"} <= set(coord)
        assert len(coord) == 5


def load_node(node_dir: Path):
    from psi_node.config import load_node_config

    return load_node_config(node_dir)


class TestNodeDoctor:
    def test_fresh_node_passes_with_only_the_missing_log_as_warning(self, node_dir):
        """A node after init, install-cert and roster accept passes; without its log, one warning.

        Accepting the roster is the node's first audit event, so a fresh node's log holds
        it; a node whose log is not there (yet) warns about that and nothing else.
        """
        report = node_doctor(node_dir, check_coordinator=False)
        assert report.ok, report.render()
        assert [c.name for c in report.checks if c.status != OK] == [], report.render()
        assert "1 event, chain and signatures verify" in report.by_name("audit log").detail
        load_node(node_dir).audit_log.unlink()
        report = node_doctor(node_dir, check_coordinator=False)
        assert report.ok, report.render()
        assert [c.name for c in report.checks if c.status != OK] == ["audit log"]
        assert statuses(report)["input vroegsignalering"] == OK
        assert "20 usable of 20 rows" in report.by_name("input vroegsignalering").detail

    def test_doctor_changes_nothing(self, node_dir):
        """Running the doctor leaves the node directory exactly as it was."""
        before = sorted(p.relative_to(node_dir) for p in node_dir.rglob("*"))
        node_doctor(node_dir, check_coordinator=False)
        assert sorted(p.relative_to(node_dir) for p in node_dir.rglob("*")) == before

    def test_unloadable_config_stops_early(self, node_dir):
        """A node.toml that does not load is the one failure; nothing else is guessed."""
        (node_dir / "node.toml").write_text("[node]\n")
        report = node_doctor(node_dir, check_coordinator=False)
        assert [c.name for c in report.checks] == ["node.toml"]
        assert "missing [tls] table" in report.checks[0].detail
        assert report.exit_code == 1

    def test_world_readable_key_fails(self, node_dir):
        """A TLS key readable by others fails, and the detail gives the chmod fix."""
        (node_dir / "tls/node.key").chmod(0o644)
        report = node_doctor(node_dir, check_coordinator=False)
        assert "chmod 600" in failures(report)["tls key"]
        assert not report.ok

    def test_symlinked_key_fails(self, node_dir, tmp_path):
        """A signing key that is a symlink fails, even when its target is owner-only."""
        real = tmp_path / "elsewhere.ed25519"
        (node_dir / "signing/node.ed25519").rename(real)
        (node_dir / "signing/node.ed25519").symlink_to(real)
        report = node_doctor(node_dir, check_coordinator=False)
        assert "symlink" in failures(report)["signing key"]

    def test_missing_certificate_fails(self, node_dir):
        """No tls/node.crt is a failure naming the file."""
        (node_dir / "tls/node.crt").unlink()
        report = node_doctor(node_dir, check_coordinator=False)
        assert "node.crt: certificate file not found" in failures(report)["tls certificate"]

    def test_certificate_for_another_partner_fails(self, net, node_dir):
        """A CA-issued certificate over this node's key but for another partner fails."""
        cert = leaf_for(net, node_key(net).public_key(), "woonbron")
        pki.write_pem(node_dir / "tls/node.crt", cert)
        detail = failures(node_doctor(node_dir, check_coordinator=False))["tls certificate"]
        assert "names kruispunt://testnet/partner/woonbron" in detail
        assert "expected kruispunt://testnet/partner/gemeente" in detail

    def test_certificate_for_another_key_fails(self, net, node_dir):
        """Another partner's certificate does not match this node's key."""
        shutil.copy(net.node_dirs["woonbron"] / "tls/node.crt", node_dir / "tls/node.crt")
        detail = failures(node_doctor(node_dir, check_coordinator=False))["tls certificate"]
        assert "does not match the private key" in detail

    def test_certificate_expiring_in_ten_days_warns(self, net, node_dir):
        """A certificate with 10 days left is a warning: the report still passes."""
        cert = leaf_for(net, node_key(net).public_key(), "gemeente", days=10)
        pki.write_pem(node_dir / "tls/node.crt", cert)
        # Issued as a renewal would be: registered, and in a roster the node accepted.
        store = Store(net.config.database)
        store.update_partner_cert(
            "gemeente", pki.certificate_pem(cert).decode(), pki.fingerprint(cert)
        )
        store.close()
        net.publish_roster()
        report = node_doctor(node_dir, check_coordinator=False)
        check = report.by_name("tls certificate expiry")
        assert check.status == WARN
        assert check.detail.startswith("expires in 9 days")
        assert "install-cert" in check.detail
        assert report.ok

    def test_expired_certificate_fails(self, node_dir):
        """Seen from 400 days on, the 397-day certificate has expired."""
        later = datetime.now(UTC) + timedelta(days=400)
        report = node_doctor(node_dir, now=later, check_coordinator=False)
        assert failures(report)["tls certificate expiry"].startswith("expired on")
        assert statuses(report)["tls certificate"] == OK  # the identity itself is fine

    def test_missing_input_fails(self, node_dir):
        """A purpose whose export is missing fails, naming the file."""
        (node_dir / "input.csv").unlink()
        detail = failures(node_doctor(node_dir, check_coordinator=False))["input vroegsignalering"]
        assert "input.csv" in detail

    def test_input_without_valid_rows_fails_without_echoing_values(self, node_dir):
        """An export of invalid BSNs only fails; the report names counts, never the values."""
        bad = ["123456789", "111111111", "987654320"]
        (node_dir / "input.csv").write_text("bsn;bezwaar\n" + "".join(f"{b};\n" for b in bad))
        report = node_doctor(node_dir, check_coordinator=False)
        detail = failures(report)["input vroegsignalering"]
        assert "no usable rows: 0 usable of 3 rows (3 invalid" in detail
        assert "psi-node check-input" in detail
        text = report.render() + json.dumps(report.as_dict())
        assert not any(b in text for b in bad)

    def test_no_input_identifier_reaches_the_report(self, net, node_dir):
        """Neither the rendered report nor its JSON holds any identifier from the export."""
        report = node_doctor(node_dir, check_coordinator=False)
        text = report.render() + json.dumps(report.as_dict())
        assert net.data is not None
        values = [row["bsn"] for row in net.data.rows["gemeente"]]
        assert values
        assert not [v for v in values if v in text]
        assert "[redacted" not in text

    def test_invalid_rows_warn(self, node_dir):
        """Some invalid rows next to valid ones are a warning, not a failure."""
        with (node_dir / "input.csv").open("a", encoding="utf-8") as fh:
            fh.write("123456789;\n")
        check = node_doctor(node_dir, check_coordinator=False).by_name("input vroegsignalering")
        assert check.status == WARN
        assert "1 invalid" in check.detail

    def test_results_path_that_is_a_file_fails(self, node_dir):
        """A results path that is a file cannot take results (caught for root too)."""
        (node_dir / "results-file").write_text("")
        set_results_path(node_dir, "results-file")
        assert (
            "not a directory"
            in failures(node_doctor(node_dir, check_coordinator=False))["results folder"]
        )

    def test_read_only_results_folder_fails(self, node_dir, monkeypatch):
        """A results folder this user cannot write to fails."""
        (node_dir / "results").chmod(0o500)
        if os.access(node_dir / "results", os.W_OK):
            # root writes through any mode: make the write itself fail as EACCES would.
            import kruispunt.doctor

            def refuse(*_a: object, **_k: object) -> tuple[int, str]:
                raise PermissionError(13, "Permission denied")

            monkeypatch.setattr(kruispunt.doctor.tempfile, "mkstemp", refuse)
        try:
            detail = failures(node_doctor(node_dir, check_coordinator=False))["results folder"]
        finally:
            (node_dir / "results").chmod(0o700)
        assert "not writable" in detail

    def test_results_folder_open_to_others_warns(self, node_dir):
        """Results hold identifiers: a folder others can read is a warning with the fix."""
        (node_dir / "results").chmod(0o755)
        check = node_doctor(node_dir, check_coordinator=False).by_name("results folder")
        assert check.status == WARN
        assert "chmod 700" in check.detail

    def test_tampered_audit_log_fails(self, node_dir):
        """An edited event in the node's audit log fails, naming the first bad event."""
        log_path = node_dir / "audit/node-audit.jsonl"
        key = signing.load_signing_key(node_dir / "signing/node.ed25519")
        with NodeAudit(log_path, key) as audit:
            for _ in range(3):
                audit.append(
                    "manifest.seen",
                    actor="coordinator",
                    on_behalf_of="testnet",
                    access_point="grpc",
                    action="R",
                )
        assert node_doctor(node_dir, check_coordinator=False).by_name("audit log").status == OK
        lines = log_path.read_text().splitlines()
        lines[1] = lines[1].replace('"actor":"coordinator"', '"actor":"mallory"')
        log_path.write_text("\n".join(lines) + "\n")
        assert "at event 2" in failures(node_doctor(node_dir, check_coordinator=False))["audit log"]

    def test_policy_without_input_is_refused_by_config_and_input_without_policy_warns(
        self, node_dir
    ):
        """An input with no policy warns: every round for that purpose would be refused."""
        with (node_dir / "node.toml").open("a", encoding="utf-8") as fh:
            fh.write(f'\n[inputs.schulden]\npath = "{node_dir / "input.csv"}"\nkind = "bsn"\n')
        check = node_doctor(node_dir, check_coordinator=False).by_name("policy schulden")
        assert check.status == WARN
        assert "refuses every round" in check.detail

    def test_serving_node_answers_its_own_health_check(self, net, node_dir):
        """With serve running, the node's own port answers health over mTLS: ok."""
        server = net.start_node("gemeente")
        report = node_doctor(node_dir, env={"KRUISPUNT_NODE_LISTEN": f"127.0.0.1:{server.port}"})
        check = report.by_name("serving")
        assert check.status == OK, check.detail
        assert "SERVING" in check.detail

    def test_stopped_node_warns(self, node_dir):
        """Nothing on the port is a warning (doctor runs before serve, too)."""
        free = socket.create_server(("127.0.0.1", 0))
        port = free.getsockname()[1]
        free.close()
        report = node_doctor(node_dir, env={"KRUISPUNT_NODE_LISTEN": f"127.0.0.1:{port}"})
        check = report.by_name("serving")
        assert check.status == WARN
        assert "not running" in check.detail

    def test_port_held_by_another_program_fails(self, node_dir, refusing_listener):
        """A port held by something that is not this node fails: serve could not bind it."""
        report = node_doctor(
            node_dir, env={"KRUISPUNT_NODE_LISTEN": f"127.0.0.1:{refusing_listener}"}
        )
        assert "does not answer as" in failures(report)["serving"]

    def test_bad_listen_address_fails(self, node_dir):
        """A listen address that does not parse fails."""
        report = node_doctor(node_dir, env={"KRUISPUNT_NODE_LISTEN": "localhost"})
        assert "HOST:PORT" in failures(report)["listen address"]


class TestCoordinatorDoctor:
    def test_fresh_coordinator_passes(self, net, tmp_path):
        """A coordinator after init, partner add and moving the CA key offline (as init
        says) has no failures and no warnings."""
        net.config.ca_key.rename(tmp_path / "ca.key")
        report = coordinator_doctor(net.coordinator_dir, check_partners=False)
        assert report.ok, report.render()
        assert all(c.status == OK for c in report.checks), report.render()
        assert "partner woonbron certificate expiry" in statuses(report)

    def test_ca_key_still_online_is_a_warning(self, net):
        """Right after init the CA key is in DIR/ca-offline: a warning that says to move it."""
        check = coordinator_doctor(net.coordinator_dir, check_partners=False).by_name("CA key")
        assert check.status == WARN
        assert "matches the CA certificate, but it is still on this machine" in check.detail
        assert f"move {net.coordinator_dir.resolve() / 'ca-offline'} to offline media" in (
            check.detail
        )

    def test_offline_ca_key_is_fine(self, net, tmp_path):
        """With the CA key moved to removable media the coordinator is still healthy."""
        net.config.ca_key.rename(tmp_path / "ca.key")
        report = coordinator_doctor(net.coordinator_dir, check_partners=False)
        assert "not on this machine" in report.by_name("CA key").detail
        assert report.ok

    def test_world_readable_signing_key_fails(self, net):
        """A group-readable manifest signing key fails."""
        net.config.signing_key.chmod(0o640)
        report = coordinator_doctor(net.coordinator_dir, check_partners=False)
        assert "group or others" in failures(report)["signing key"]

    def test_partner_certificate_expiring_warns(self, net):
        """A registered partner whose certificate has 10 days left is a warning."""
        cert = leaf_for(net, node_key(net, "woonbron").public_key(), "woonbron", days=10)
        store = Store(net.config.database)
        store.update_partner_cert(
            "woonbron", pki.certificate_pem(cert).decode(), pki.fingerprint(cert)
        )
        store.close()
        report = coordinator_doctor(net.coordinator_dir, check_partners=False)
        check = report.by_name("partner woonbron certificate expiry")
        assert check.status == WARN
        assert "partner renew" in check.detail
        assert report.ok

    def test_expired_coordinator_certificates_fail(self, net):
        """Seen from 400 days on, the coordinator's and operator's certificates have expired."""
        later = datetime.now(UTC) + timedelta(days=400)
        found = failures(coordinator_doctor(net.coordinator_dir, now=later, check_partners=False))
        assert {"tls certificate expiry", "operator certificate expiry"} <= set(found)

    def test_tampered_audit_chain_fails(self, net):
        """An audit row edited behind the triggers' back fails verification."""
        db = sqlite3.connect(net.config.database)
        db.execute("DROP TRIGGER audit_events_no_update")
        db.execute("UPDATE audit_events SET actor='operator:mallory' WHERE seq=2")
        db.commit()
        db.close()
        detail = failures(coordinator_doctor(net.coordinator_dir, check_partners=False))[
            "audit log"
        ]
        assert "at event 2" in detail

    def test_purpose_naming_an_unregistered_partner_fails(self, net):
        """A purpose listing a partner that is not registered fails, naming it.

        `purpose add` refuses such a purpose now; one stored by an older version (or
        whose partner left the registry later) is still found by the doctor.
        """
        with pytest.raises(ConfigError, match="names 'zayaz', not a registered active partner"):
            net.add_purpose(legal_basis=dict.fromkeys([*PARTNERS, "zayaz"], "AVG art. 6(1)(e)"))
        stale = Purpose.from_dict(
            {
                **net.add_purpose().to_dict(),
                "legal_basis": dict.fromkeys([*PARTNERS, "zayaz"], "AVG art. 6(1)(e)"),
            }
        )
        store = Store(net.config.database)
        store.put_purpose(stale, "2026-01-05T09:00:00+00:00", "operator:older-version")
        store.close()
        detail = failures(coordinator_doctor(net.coordinator_dir, check_partners=False))[
            "purpose vroegsignalering"
        ]
        assert "not registered: zayaz" in detail

    def test_invalid_cron_fails(self, net):
        """A bad cron expression fails, and every schedule is reported, not just the first."""
        with (net.coordinator_dir / "coordinator.toml").open("a", encoding="utf-8") as fh:
            fh.write(
                '\n[[schedule]]\npurpose = "vroegsignalering"\ncron = "0 6 * * 1"\n'
                '\n[[schedule]]\npurpose = "schulden"\ncron = "0 25 * * 1"\n'
            )
        report = coordinator_doctor(net.coordinator_dir, check_partners=False)
        assert statuses(report)["schedule #1 vroegsignalering"] == OK
        found = failures(report)
        assert "schedule #2 schulden" in found
        assert "invalid" in found["schedule #2 schulden"]
        assert "coordinator.toml" in found

    def test_schedule_for_an_unregistered_purpose_fails(self, net):
        """A valid cron for a purpose that is not registered fails: it would never start."""
        with (net.coordinator_dir / "coordinator.toml").open("a", encoding="utf-8") as fh:
            fh.write('\n[[schedule]]\npurpose = "onbekend"\ncron = "0 6 * * 1"\n')
        detail = failures(coordinator_doctor(net.coordinator_dir, check_partners=False))[
            "schedule #1 onbekend"
        ]
        assert "not registered" in detail

    def test_stopped_partner_is_unreachable(self, network_factory):
        """With one node stopped, the coordinator reports it unreachable and the other SERVING."""
        net = network_factory(PARTNERS, **SMALL)
        net.stop_node("woonbron")
        assert net.coordinator is not None
        report = coordinator_doctor(
            net.coordinator_dir,
            env={"KRUISPUNT_COORDINATOR_LISTEN": f"127.0.0.1:{net.coordinator.port}"},
        )
        found = failures(report)
        assert list(found) == ["partner woonbron reachable"]
        assert "unreachable (UNAVAILABLE" in found["partner woonbron reachable"]
        assert "SERVING" in report.by_name("partner gemeente reachable").detail
        assert report.by_name("admin service").status == OK

    def test_node_with_another_partners_certificate_is_unreachable(self, network_factory):
        """A node answering with a certificate for another partner fails the TLS name check."""
        net = network_factory(PARTNERS, **SMALL)
        port = net.nodes["woonbron"].port
        store = Store(net.config.database)
        store.update_partner_address("gemeente", f"127.0.0.1:{port}")
        store.close()
        found = failures(coordinator_doctor(net.coordinator_dir))
        assert "partner gemeente reachable" in found
        assert "partner woonbron reachable" not in found


class TestRenew:
    def test_renewed_certificate_serves_a_new_round(self, network_factory):
        """Renew, install-cert, restart: the node serves the new certificate; a round completes."""
        net = network_factory(PARTNERS, **SMALL)
        net.add_purpose()
        node_dir = net.node_dirs["gemeente"]
        old = pki.load_certificate(node_dir / "tls/node.crt")
        issued = renew_partner(net.config, "gemeente", ca_key_path=net.ca_key, days=90)
        net.stop_node("gemeente")
        install_certificate(
            node_dir,
            cert_path=issued,
            ca_path=net.config.tls_ca,
            coordinator_key_path=net.config.signing_public_key,
            partner_id="gemeente",
        )
        # A renewed certificate has a new fingerprint: a new roster, accepted everywhere.
        net.publish_roster()
        server = net.start_node("gemeente")
        summary = net.run()
        assert summary.state == "completed", summary.reason
        new = served_certificate(server.port, net)
        assert pki.fingerprint(new) != pki.fingerprint(old)
        assert pki.same_public_key(new.public_key(), old.public_key())
        assert 89 <= pki.certificate_expires_in(new).days <= 90
        store = Store(net.config.database)
        partner = store.partner("gemeente")
        store.close()
        assert partner is not None
        assert partner.cert_fingerprint == pki.fingerprint(new)
        event = audit_events(net, "partner.renewed")[-1]
        assert event.details["key_rotated"] is False
        assert event.details["previous_fingerprint"] == pki.fingerprint(old)

    def test_key_rotation_from_a_new_csr(self, network_factory, tmp_path):
        """A CSR over a new key gives a certificate for that key; the node then runs a round."""
        net = network_factory(PARTNERS, **SMALL)
        net.add_purpose()
        node_dir = net.node_dirs["gemeente"]
        new_key = pki.generate_tls_key()
        csr = tmp_path / "gemeente.csr"
        pki.write_pem(csr, pki.create_csr_for_name(new_key, "gemeente"))
        issued = renew_partner(net.config, "gemeente", ca_key_path=net.ca_key, csr_path=csr)
        net.stop_node("gemeente")
        (node_dir / "tls/node.key").unlink()
        pki.write_private_key(node_dir / "tls/node.key", new_key)
        install_certificate(
            node_dir,
            cert_path=issued,
            ca_path=net.config.tls_ca,
            coordinator_key_path=net.config.signing_public_key,
            partner_id="gemeente",
        )
        net.publish_roster()  # the rotated key's certificate has a new fingerprint
        server = net.start_node("gemeente")
        summary = net.run()
        assert summary.state == "completed", summary.reason
        assert pki.same_public_key(
            served_certificate(server.port, net).public_key(), new_key.public_key()
        )
        assert audit_events(net, "partner.renewed")[-1].details["key_rotated"] is True
        assert (
            node_doctor(node_dir, check_coordinator=False).by_name("tls certificate").status == OK
        )

    def test_csr_for_another_partner_is_refused(self, net, tmp_path):
        """A rotation CSR naming another partner is refused and nothing changes."""
        csr = tmp_path / "other.csr"
        pki.write_pem(csr, pki.create_csr_for_name(pki.generate_tls_key(), "woonbron"))
        before = (net.coordinator_dir / "partners/gemeente.crt").read_bytes()
        with pytest.raises(ConfigError, match="CN does not match"):
            renew_partner(net.config, "gemeente", ca_key_path=net.ca_key, csr_path=csr)
        assert (net.coordinator_dir / "partners/gemeente.crt").read_bytes() == before

    def test_unknown_partner_is_refused(self, net):
        """Renewing a partner that is not registered is a ConfigError."""
        with pytest.raises(ConfigError, match="not registered"):
            renew_partner(net.config, "zayaz", ca_key_path=net.ca_key)

    def test_renewed_coordinator_certificates_run_a_round(self, network_factory):
        """The coordinator's own certificates renew for the same keys and still run a round,
        once every node accepts the roster that pins the new certificate."""
        net = network_factory(PARTNERS, start=False, **SMALL)
        config = net.config
        old = pki.load_certificate(config.tls_cert)
        later = datetime.now(UTC) + timedelta(minutes=1)
        written = renew_coordinator(config, ca_key_path=net.ca_key, days=60, now=later)
        assert written == [config.tls_cert, config.operator_cert]
        new = pki.load_certificate(config.tls_cert)
        assert pki.fingerprint(new) != pki.fingerprint(old)
        net.publish_roster()  # nodes admit only the pinned coordinator certificate
        for pid in PARTNERS:
            net.start_node(pid)
        net.start_coordinator()
        net.add_purpose()
        summary = net.run()
        assert summary.state == "completed", summary.reason
        assert audit_events(net, "coordinator.renewed")


def audit_events(net: TestNetwork, name: str) -> list:
    config = net.config
    with CoordinatorAudit(config.database, signing.load_signing_key(config.signing_key)) as audit:
        return [e for e in audit.events() if e.event == name]


def _unit(name: str) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit file as section -> [(key, value)] (keys may repeat, as in systemd)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in (UNITS / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            current = sections.setdefault(header[1], [])
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{name}: cannot parse {raw!r}"
        assert current is not None, f"{name}: {raw!r} comes before any [section]"
        current.append((key.strip(), value.strip()))
    return sections


def _values(unit: dict[str, list[tuple[str, str]]], key: str) -> list[str]:
    return [v for k, v in unit["Service"] if k == key]


class TestSystemdUnits:
    @pytest.mark.parametrize(
        ("name", "command", "directory"),
        [
            ("psi-node.service", "psi-node serve", "/srv/kruispunt"),
            ("psi-coordinator.service", "psi-coordinator serve", "/srv/kruispunt-coord"),
        ],
    )
    def test_unit_runs_the_server_as_a_dedicated_user_and_stops_gracefully(
        self, name, command, directory
    ):
        """Each unit runs serve as user kruispunt, restarts on failure and stops by SIGTERM."""
        unit = _unit(name)
        assert _values(unit, "User") == ["kruispunt"]
        assert _values(unit, "WorkingDirectory") == [directory]
        assert _values(unit, "ExecStart") == [f"/opt/kruispunt/bin/{command} {directory}"]
        assert _values(unit, "Restart") == ["on-failure"]
        assert _values(unit, "KillSignal") == ["SIGTERM"]
        assert _values(unit, "TimeoutStopSec")
        assert _values(unit, "ReadWritePaths") == [directory]
        assert ("WantedBy", "multi-user.target") in unit["Install"]

    @pytest.mark.parametrize("name", ["psi-node.service", "psi-coordinator.service"])
    def test_unit_reloads_by_sighup(self, name):
        """`systemctl reload` sends the server SIGHUP: it reads its config again, no restart."""
        assert _values(_unit(name), "ExecReload") == ["/bin/kill -HUP $MAINPID"]

    @pytest.mark.parametrize("name", ["psi-node.service", "psi-coordinator.service"])
    def test_unit_is_hardened(self, name):
        """No privileges, read-only system, private /tmp, IP and Unix sockets only, W^X, no core."""
        unit = _unit(name)
        expected = {
            "NoNewPrivileges": "yes",
            "CapabilityBoundingSet": "",
            "ProtectSystem": "strict",
            "PrivateTmp": "yes",
            "ProtectHome": "yes",
            "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
            "MemoryDenyWriteExecute": "yes",
            "UMask": "0077",
            # Keys, identifiers and tags in memory never reach a core file.
            "LimitCORE": "0",
        }
        for key, value in expected.items():
            assert _values(unit, key) == [value], key
        # rbcl loads libsodium from a file it writes to $TMPDIR: /tmp must stay executable.
        assert not _values(unit, "NoExecPaths")
