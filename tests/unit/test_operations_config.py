"""Unattended operation's settings: retries and notifications, the metrics address, which
failures count as transient, and the node's limit on set size changes."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from coordinator.config import SchedulerConfig, load_coordinator_config
from coordinator.round_context import PartnersUnreachable, round_failure
from coordinator.schedule import retry_delay
from kruispunt.errors import ConfigError, ProtocolError, RoundFailed
from kruispunt.metrics import MetricsConfig, load_metrics_config
from kruispunt.rpc import PeerError
from psi_node.config import PolicyConfig, load_node_config
from psi_node.policy import SetSizeHistory, set_change


def coordinator_dir(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "coordinator.toml").write_text(
        '[coordinator]\nnetwork = "testnet"\n' + extra, encoding="utf-8"
    )
    return tmp_path


def unavailable(pid: str = "woonbron") -> PeerError:
    return PeerError(f"{pid}: unreachable", grpc.StatusCode.UNAVAILABLE, "connect failed")


class TestSchedulerConfig:
    def test_defaults_without_a_scheduler_table(self, tmp_path):
        """No [scheduler]: three attempts, 60 s doubling to 15 minutes, nobody notified."""
        config = load_coordinator_config(coordinator_dir(tmp_path, ""))
        assert config.scheduler == SchedulerConfig()
        assert config.scheduler.retry_attempts == 3
        assert config.scheduler.notify_command == ()
        assert config.metrics is None

    def test_settings_are_read(self, tmp_path):
        """Attempts, delays, the command as an argument list and the webhook are taken."""
        config = load_coordinator_config(
            coordinator_dir(
                tmp_path,
                "[scheduler]\nretry_attempts = 5\nretry_base_seconds = 10\n"
                "retry_max_seconds = 120\n"
                'notify_command = ["/usr/local/bin/alert", "--team", "ops"]\n'
                'notify_webhook = "https://alerts.example.nl/hook"\n'
                "notify_timeout_seconds = 3\n",
            )
        )
        assert config.scheduler == SchedulerConfig(
            retry_attempts=5,
            retry_base_seconds=10.0,
            retry_max_seconds=120.0,
            notify_command=("/usr/local/bin/alert", "--team", "ops"),
            notify_webhook="https://alerts.example.nl/hook",
            notify_timeout_seconds=3.0,
        )

    @pytest.mark.parametrize(
        ("line", "names"),
        [
            ("retry_attempts = 0", "retry_attempts"),
            ("retry_attempts = true", "retry_attempts"),
            ("retry_base_seconds = -1", "retry_base_seconds"),
            ("retry_base_seconds = 100\nretry_max_seconds = 10", "retry_max_seconds"),
            ('notify_command = "alert --team ops"', "without a shell"),
            ("notify_command = []\nnotify_webhook = 42", "notify_webhook"),
            ('notify_webhook = "file:///etc/passwd"', "https://"),
            ("notify_timeout_seconds = 0", "notify_timeout_seconds"),
        ],
    )
    def test_bad_settings_name_the_field(self, tmp_path, line, names):
        """A bad [scheduler] value is refused naming the file, the table and the field."""
        with pytest.raises(ConfigError) as err:
            load_coordinator_config(coordinator_dir(tmp_path, f"[scheduler]\n{line}\n"))
        assert "coordinator.toml: [scheduler]" in str(err.value)
        assert names in str(err.value)

    def test_backoff_doubles_up_to_the_cap(self):
        """Retry 1 waits the base delay, each next one twice as long, never above the cap."""
        config = SchedulerConfig(retry_base_seconds=60, retry_max_seconds=300)
        assert [retry_delay(config, n) for n in (1, 2, 3, 4, 5)] == [60, 120, 240, 300, 300]


class TestMetricsConfig:
    def test_absent_table_means_off(self):
        """Without [metrics] there is no endpoint."""
        assert load_metrics_config({}, "node.toml") is None

    @pytest.mark.parametrize(
        ("listen", "host", "port"),
        [
            ("127.0.0.1:9464", "127.0.0.1", 9464),
            ("[::1]:9464", "::1", 9464),
            ("localhost:0", "localhost", 0),
        ],
    )
    def test_loopback_addresses_are_accepted(self, listen, host, port):
        """Loopback (IPv4, IPv6, localhost) needs no further word."""
        config = load_metrics_config({"metrics": {"listen": listen}}, "node.toml")
        assert config == MetricsConfig(host, port, False)

    @pytest.mark.parametrize("listen", ["0.0.0.0:9464", "10.1.2.3:9464", "monitor.example.nl:9464"])
    def test_other_addresses_are_refused_unless_allowed(self, listen):
        """A non-loopback address is refused with the reason and the way to allow it."""
        with pytest.raises(ConfigError) as err:
            load_metrics_config({"metrics": {"listen": listen}}, "node.toml")
        assert "node.toml: [metrics]" in str(err.value)
        assert "not a loopback address" in str(err.value)
        assert "allow_remote = true" in str(err.value)
        allowed = load_metrics_config(
            {"metrics": {"listen": listen, "allow_remote": True}}, "node.toml"
        )
        assert allowed is not None
        assert allowed.allow_remote

    @pytest.mark.parametrize(
        ("table", "reason"),
        [
            ({}, "needs listen"),
            ({"listen": "9464"}, "HOST:PORT"),
            ({"listen": "127.0.0.1:http"}, "port must be a number"),
            ({"listen": "127.0.0.1:70000"}, "0..65535"),
            ({"listen": "127.0.0.1:9464", "allow_remote": "yes"}, "true or false"),
        ],
    )
    def test_malformed_tables_name_the_problem(self, table, reason):
        """A malformed [metrics] table is refused with the reason."""
        with pytest.raises(ConfigError, match=reason):
            load_metrics_config({"metrics": table}, "coordinator.toml")

    def test_coordinator_config_reads_the_table(self, tmp_path):
        """coordinator.toml's [metrics] reaches the config."""
        config = load_coordinator_config(
            coordinator_dir(tmp_path, '[metrics]\nlisten = "127.0.0.1:9464"\n')
        )
        assert config.metrics == MetricsConfig("127.0.0.1", 9464)


class TestTransientFailures:
    def test_unreachable_and_slow_partners_are_transient(self):
        """Every failed partner UNAVAILABLE or DEADLINE_EXCEEDED: worth a retry."""
        slow = PeerError("slow", grpc.StatusCode.DEADLINE_EXCEEDED, "")
        failure = round_failure("blind", {"woonbron": unavailable(), "zayaz": slow})
        assert isinstance(failure, PartnersUnreachable)
        assert str(failure).startswith("blind failed: woonbron: ")

    @pytest.mark.parametrize(
        "other",
        [
            PeerError("denied", grpc.StatusCode.PERMISSION_DENIED, "attack refused"),
            PeerError("bad", grpc.StatusCode.INVALID_ARGUMENT, "bad point"),
            ProtocolError("sent points out of order"),
        ],
    )
    def test_one_partner_refusing_or_misbehaving_is_not(self, other):
        """One refusal, attack or malformed answer among them: a plain failure, no retry."""
        failure = round_failure("evaluate step 1", {"woonbron": unavailable(), "zayaz": other})
        assert type(failure) is RoundFailed


def node_dir(tmp_path: Path, policy_line: str) -> Path:
    (tmp_path / "node.toml").write_text(
        '[node]\npartner_id = "woonbron"\n[tls]\n[signing]\n'
        '[inputs.vroeg]\npath = "in.csv"\nkind = "bsn"\n'
        '[policy.vroeg]\nlegal_basis = "AVG art. 6(1)(e)"\npartners = ["gemeente"]\n'
        f"max_set_size = 1000\n{policy_line}\n",
        encoding="utf-8",
    )
    return tmp_path


class TestSetChangePolicy:
    def test_the_policy_key_is_read_and_off_by_default(self, tmp_path):
        """max_set_change_percent is taken from the policy; without it there is no limit."""
        on = load_node_config(node_dir(tmp_path, "max_set_change_percent = 25"))
        assert on.policies["vroeg"].max_set_change_percent == 25.0
        off = load_node_config(node_dir(tmp_path, ""))
        assert off.policies["vroeg"].max_set_change_percent is None

    @pytest.mark.parametrize("value", ["0", "-5", "true", '"50%"'])
    def test_bad_values_are_refused_with_the_reason(self, tmp_path, value):
        """Anything but a percentage above 0 is refused, naming the table and the key."""
        with pytest.raises(ConfigError) as err:
            load_node_config(node_dir(tmp_path, f"max_set_change_percent = {value}"))
        assert "[policy.vroeg] max_set_change_percent must be a percentage above 0" in str(
            err.value
        )

    @pytest.mark.parametrize(
        ("previous", "size", "moved"),
        [(1000, 499, "dropped"), (1000, 1501, "grew"), (10, 4, "dropped")],
    )
    def test_a_change_beyond_the_limit_is_refused_without_sizes(self, previous, size, moved):
        """Beyond the limit: the reason names the direction and limit, never a size."""
        policy = PolicyConfig("vroeg", "basis", frozenset(), 5000, max_set_change_percent=50)
        change = set_change(policy, previous, size)
        assert change is not None
        assert f"{moved} by more than 50 %" in change.reason
        assert (change.previous, change.size) == (previous, size)
        for number in (str(previous), str(size)):
            assert number not in change.reason.replace("50 %", "")

    @pytest.mark.parametrize(("previous", "size"), [(1000, 500), (1000, 1500), (None, 10)])
    def test_within_the_limit_or_without_history_is_accepted(self, previous, size):
        """At most the limit (either way), or no previous round: no refusal."""
        policy = PolicyConfig("vroeg", "basis", frozenset(), 5000, max_set_change_percent=50)
        assert set_change(policy, previous, size) is None

    def test_size_history_survives_and_a_damaged_file_refuses(self, tmp_path):
        """Sizes are kept per purpose across restarts; a damaged file raises, never forgets."""
        SetSizeHistory(tmp_path).record("vroeg", 812)
        assert SetSizeHistory(tmp_path).last("vroeg") == 812
        assert SetSizeHistory(tmp_path).last("other") is None
        (tmp_path / "set-sizes.json").write_text('{"vroeg": "veel"}', encoding="utf-8")
        with pytest.raises(ConfigError, match="holds no set size"):
            SetSizeHistory(tmp_path).last("vroeg")
        (tmp_path / "set-sizes.json").write_text("{", encoding="utf-8")
        with pytest.raises(ConfigError, match="unreadable"):
            SetSizeHistory(tmp_path).last("vroeg")
