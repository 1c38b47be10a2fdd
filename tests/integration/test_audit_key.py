"""The coordinator's audit signing key: apart from the manifest key; an older directory."""

from __future__ import annotations

import re
from pathlib import Path

from coordinator.audit import CoordinatorAudit, open_audit, read_database
from coordinator.config import load_coordinator_config
from coordinator.doctor import run_doctor
from coordinator.provision import init_coordinator
from kruispunt import signing
from kruispunt.doctor import FAIL, OK


def legacy(directory: Path) -> None:
    """Turn a fresh coordinator into one made before the split: no [audit] table, and a log
    signed with the manifest key."""
    toml = directory / "coordinator.toml"
    toml.write_text(re.sub(r"\[audit\][^\[]*", "", toml.read_text()), encoding="utf-8")
    config = load_coordinator_config(directory)
    config.database.unlink()
    for extra in ("-wal", "-shm"):
        Path(str(config.database) + extra).unlink(missing_ok=True)
    (directory / "signing/audit.ed25519").unlink()
    (directory / "signing/audit.pub").unlink()
    with CoordinatorAudit(config.database, signing.load_signing_key(config.signing_key)) as log:
        log.append(
            "coordinator.initialised",
            actor="operator:admin",
            on_behalf_of="net",
            access_point="cli",
            action="C",
        )


class TestAuditKey:
    def test_init_writes_a_separate_audit_key_that_signs_the_log(self, tmp_path):
        """init writes signing/audit.ed25519 (+ .pub), names it in the config, signs with it."""
        init_coordinator(tmp_path / "c", "net")
        config = load_coordinator_config(tmp_path / "c")
        assert config.audit_key_separate
        assert config.audit_key == (tmp_path / "c/signing/audit.ed25519").resolve()
        assert config.audit_key.stat().st_mode & 0o777 == 0o600
        audit_pub = signing.load_public_key(config.audit_public_key.read_bytes())
        manifest_pub = signing.load_public_key(config.signing_public_key.read_bytes())
        assert signing.key_id(audit_pub) != signing.key_id(manifest_pub)
        events = read_database(config.database)
        assert {e.key_id for e in events} == {signing.key_id(audit_pub)}
        assert events[0].details["audit_key_id"] == signing.key_id(audit_pub)

    def test_doctor_checks_the_audit_key(self, tmp_path):
        """A fresh coordinator's audit key and public key pass the doctor; the log verifies."""
        init_coordinator(tmp_path / "c", "net")
        report = run_doctor(tmp_path / "c", check_partners=False)
        assert report.by_name("audit signing key").status == OK
        assert report.by_name("audit public key").status == OK
        assert report.by_name("audit log").status == OK

    def test_a_mismatched_audit_public_key_fails_the_doctor(self, tmp_path):
        """An audit.pub that is not the audit key's public half fails, naming both files."""
        init_coordinator(tmp_path / "c", "net")
        other = signing.generate_signing_key().public_key()
        (tmp_path / "c/signing/audit.pub").write_bytes(signing.public_key_pem(other))
        check = run_doctor(tmp_path / "c", check_partners=False).by_name("audit public key")
        assert check.status == FAIL
        assert "does not match" in check.detail

    def test_an_older_directory_keeps_working_and_fails_the_doctor(self, tmp_path):
        """Without [audit] the log stays signed with the manifest key; doctor says why and how."""
        init_coordinator(tmp_path / "c", "net")
        legacy(tmp_path / "c")
        config = load_coordinator_config(tmp_path / "c")
        assert not config.audit_key_separate
        assert config.audit_key == config.signing_key
        with open_audit(config) as log:
            log.append(
                "operator.action",
                actor="operator:admin",
                on_behalf_of="net",
                access_point="cli",
                action="R",
            )
            assert log.verify().ok
        report = run_doctor(tmp_path / "c", check_partners=False)
        check = report.by_name("audit signing key")
        assert check.status == FAIL
        assert "predates" in check.detail
        assert "psi-coordinator init" in check.detail
        assert report.by_name("audit log").status == OK
