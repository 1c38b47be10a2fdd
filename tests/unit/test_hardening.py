"""kruispunt.hardening: no core dumps, no same-user ptrace, in servers and their group work.

Every check runs in a fresh `python -c` so that the test process itself keeps its limits
and stays dumpable (pytest's own crash reports and debuggers still work).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.support.paths import REPO

DROP_CAPABILITIES = """
import ctypes, os

class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

class _Data(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("effective", "permitted", "inheritable")]

# As root, commoncap lets a process read another's /proc/PID/environ only if it holds every
# capability the other holds, and CAP_SYS_PTRACE overrides the dumpable flag. So to see the
# flag from outside, this process and everything it starts (a process that is exec'd, which
# would give root every capability again) run as root without any capability.
_libc = ctypes.CDLL(None, use_errno=True)
if os.geteuid() == 0:
    for cap in range(64):
        if _libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            if ctypes.get_errno() == 22:  # EINVAL: past the last capability, all dropped
                break
            raise SystemExit(f"cannot drop capability {cap}: errno {ctypes.get_errno()}")
if _libc.capset(ctypes.byref(_Header(0x20080522, 0)), (_Data * 2)()) != 0:
    raise SystemExit(f"capset failed: errno {ctypes.get_errno()}")
"""
"""Prelude of a child that must see other processes' dumpable flag as an ordinary user would."""


def run_python(code: str) -> dict[str, object]:
    """Run `code` in a fresh interpreter at the repository root; it prints one JSON object."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert isinstance(result, dict)
    return result


class TestDisableCoreDumps:
    def test_sets_core_limit_to_zero_and_clears_dumpable(self) -> None:
        """After the call, RLIMIT_CORE is (0, 0) and PR_GET_DUMPABLE says 0; before, 1."""
        result = run_python(
            """
            import json, resource
            from kruispunt.hardening import disable_core_dumps, dumpable
            resource.setrlimit(resource.RLIMIT_CORE, (1 << 20, resource.RLIM_INFINITY))
            before = dumpable()
            disable_core_dumps()
            print(json.dumps({"before": before, "after": dumpable(),
                              "limit": resource.getrlimit(resource.RLIMIT_CORE)}))
            """
        )
        assert result == {"before": 1, "after": 0, "limit": [0, 0]}

    def test_a_refused_setrlimit_is_a_warning_and_prctl_still_runs(self) -> None:
        """When setrlimit fails the process goes on: a warning names why; dumpable is still 0."""
        result = run_python(
            """
            import json, resource
            import structlog.testing
            from kruispunt.hardening import disable_core_dumps, dumpable

            def refuse(*args):
                raise OSError(1, "Operation not permitted")

            resource.setrlimit = refuse
            with structlog.testing.capture_logs() as logs:
                disable_core_dumps()
            print(json.dumps({"logs": logs, "dumpable": dumpable()}))
            """
        )
        assert result["dumpable"] == 0
        logs = result["logs"]
        assert isinstance(logs, list)
        assert [(e["log_level"], e["event"]) for e in logs] == [
            ("warning", "core dumps stay allowed: cannot set RLIMIT_CORE to 0")
        ]
        assert "Operation not permitted" in logs[0]["reason"]

    def test_exec_makes_a_process_dumpable_again_but_keeps_the_limit(self) -> None:
        """The kernel resets dumpable on execve and keeps RLIMIT_CORE: why workers call it too."""
        result = run_python(
            """
            import json, resource, subprocess, sys
            from kruispunt.hardening import disable_core_dumps
            disable_core_dumps()
            child = subprocess.run(
                [sys.executable, "-c",
                 "import json, resource; from kruispunt.hardening import dumpable; "
                 "print(json.dumps([dumpable(), resource.getrlimit(resource.RLIMIT_CORE)]))"],
                capture_output=True, text=True, check=True)
            print(json.dumps({"child": json.loads(child.stdout)}))
            """
        )
        assert result == {"child": [1, [0, 0]]}


class TestGroupWork:
    def test_the_group_work_runs_in_the_nodes_own_non_dumpable_process(self) -> None:
        """Blinding, evaluating and tagging start no process (no key crosses a pipe): they run
        on the node's own threads, so the node's non-dumpable flag covers every key."""
        result = run_python(
            """
import json, os
from kruispunt.hardening import disable_core_dumps, dumpable
from psi_node import oprf
from tests.support.netlab import descendants

disable_core_dumps()
oprf.set_workers(2, chunk_points=4)
key = oprf.RoundKey.generate()
inputs = [b"address:1234AB|%d||" % i for i in range(64)]
blinded = oprf.blind_inputs(inputs, key)
oprf.unblind_and_tag(inputs, key, oprf.evaluate(key, blinded))
threads = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
print(json.dumps({
    "children": descendants(os.getpid()),
    # Linux keeps 15 characters of a thread's name: "kruispunt-group-N" reads so.
    "group_threads": sum(name.startswith("kruispunt-group") for name in threads),
    "dumpable": dumpable(),
}))
"""
        )
        assert result["children"] == []
        assert result["group_threads"] == 2
        assert result["dumpable"] == 0


class TestNetlabDescriptors:
    def test_a_non_dumpable_process_is_named_as_such_not_as_gone(self) -> None:
        """open_fds counts a readable process's descriptors, and for a non-dumpable one
        (as a server is) read without root says to run as root, not that the process is gone."""
        result = run_python(
            """
import json, os, subprocess, sys
from tests.support.netlab import NetlabError, open_fds

hidden = subprocess.Popen(
    [sys.executable, "-c",
     "from kruispunt.hardening import disable_core_dumps; import sys; disable_core_dumps(); "
     "print('ready', flush=True); sys.stdin.read()"],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
)
assert hidden.stdout.readline().strip() == "ready"
if os.geteuid() == 0:
    # Read as an ordinary user would (root may list anything); everything is imported,
    # since that user may not be able to read the interpreter's library.
    os.setgid(65534)
    os.setuid(65534)

def message(pid):
    try:
        open_fds(pid)
    except NetlabError as exc:
        return str(exc)
    return None

try:
    said = {"own": open_fds(os.getpid()) > 0, "hidden": message(hidden.pid)}
finally:
    hidden.stdin.close()
    hidden.wait(timeout=30)
said["gone"] = message(hidden.pid)
print(json.dumps(said))
"""
        )
        assert result["own"] is True
        hidden = str(result["hidden"])
        assert "non-dumpable" in hidden
        assert "run as root, the servers are non-dumpable" in hidden
        assert "is gone" not in hidden
        assert "is gone" in str(result["gone"])
