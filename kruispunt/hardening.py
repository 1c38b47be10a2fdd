"""Keep a server's memory out of core dumps and away from same-user debuggers.

A node holds its round keys (`k_i`, `r_i`) and its citizens' canonical
identifiers in memory; the coordinator holds a round's blinded tags. A core
dump would write all of that to disk, where no wipe reaches it. So both
servers call `disable_core_dumps()` first thing in `serve()`, before any key
is loaded. The node's group work runs on threads of the same process (the
native core's pool), so the one call covers every key.

Two locks, because each misses a case the other catches:

- RLIMIT_CORE 0 (soft and hard, so nothing in the process can raise it
  again) stops the kernel writing a core file. It is inherited across fork
  and exec. The kernel does not apply it when `kernel.core_pattern` pipes
  cores to a program (systemd-coredump, apport): those programs read the
  limit and honour it themselves.
- PR_SET_DUMPABLE 0 (Linux) makes the kernel skip the dump whatever the
  pattern (`fs.suid_dumpable` only applies when credentials change or a
  set-user-ID program runs, which servers never do). It is inherited
  across fork but reset to 1 by execve; a node starts no other process that
  holds a key.

PR_SET_DUMPABLE 0 also takes the process out of reach of other processes of
the same user without CAP_SYS_PTRACE: no ptrace attach (gdb, py-spy), no
process_vm_readv, and /proc/PID/mem, maps, environ, io and the fd directory
become root-only. That is intended (an export job running as the service
user cannot read the keys), but it has costs, checked on Linux 6.18:

- /proc/PID/status, stat, limits and cmdline stay readable by the same
  user, so RSS, CPU time, threads and limits can still be read; stat's
  code and stack addresses read as 0.
- Counting a server's open descriptors (/proc/PID/fd, as
  `tests/support/netlab.py` does for the load tests and `benchmarks/soak.py`)
  needs root or CAP_SYS_PTRACE. The test suite runs as root in CI; a
  developer running the load tests as an ordinary user gets "Permission
  denied" there.
- The process cannot read its own /proc/self/environ unless it runs as
  root; nothing in Kruispunt or its dependencies does.

A server that cannot lower the limits still starts, with a warning naming
why: the only ways to fail are a seccomp filter refusing the call or a
platform without these calls, and the systemd units set `LimitCORE=0`
besides. Refusing to start would turn a second line of defence into an
outage of the first.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys

import structlog

log = structlog.get_logger("kruispunt.hardening")

PR_SET_DUMPABLE = 4
"""prctl option from <linux/prctl.h>: set the calling process's dumpable flag."""
PR_GET_DUMPABLE = 3
"""prctl option from <linux/prctl.h>: read the calling process's dumpable flag."""


def _libc() -> ctypes.CDLL:
    name = ctypes.util.find_library("c")
    # Python itself links libc, so the already loaded symbols serve when no
    # library file can be found by name (static or unusual installs).
    return ctypes.CDLL(name, use_errno=True) if name else ctypes.CDLL(None, use_errno=True)


def dumpable() -> int:
    """The calling process's dumpable flag (0 or 1; 2 for root-only dumps); Linux only."""
    flag = int(_libc().prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))
    if flag < 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_GET_DUMPABLE) failed")
    return flag


def disable_core_dumps() -> None:
    """Make this process write no core dump, and on Linux refuse same-user ptrace too.

    Never raises: a step that fails is logged as a warning with the reason,
    and the process goes on (see the module's docstring for why).
    """
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (OSError, ValueError) as exc:
        log.warning("core dumps stay allowed: cannot set RLIMIT_CORE to 0", reason=str(exc))
    if not sys.platform.startswith("linux"):
        return  # PR_SET_DUMPABLE is Linux's; RLIMIT_CORE is all other systems offer here
    try:
        if _libc().prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"prctl(PR_SET_DUMPABLE, 0) failed with errno {errno}")
    except (OSError, AttributeError) as exc:  # AttributeError: a libc without prctl
        log.warning("process stays dumpable: cannot clear PR_SET_DUMPABLE", reason=str(exc))
