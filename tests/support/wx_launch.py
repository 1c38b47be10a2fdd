"""Start a command under the kernel's W^X rule: `python -m tests.support.wx_launch CMD ARG...`.

The rule is `prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)` (Linux 6.3): from then on no
memory of the process, or of any process it starts, may be mapped writable and executable
at once, and no mapping may become executable later. That is what systemd's
`MemoryDenyWriteExecute=yes` is for (systemd 252 installs seccomp rules to the same end,
refusing also `mprotect` with PROT_EXEC on any mapping). The rule cannot be lifted, so it
is set here, in a process of its own, which then becomes CMD (execv).

Exits 2 with one line if the kernel has no such rule; nothing here is secret.
"""

from __future__ import annotations

import ctypes
import os
import sys

PR_SET_MDWE = 65
PR_GET_MDWE = 66
PR_MDWE_REFUSE_EXEC_GAIN = 1


def refuse_exec_gain() -> None:
    """Put this process under W^X; OSError if the kernel refuses (or has no such rule)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_MDWE): {os.strerror(errno)}")
    if libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) != PR_MDWE_REFUSE_EXEC_GAIN:
        raise OSError("prctl(PR_GET_MDWE) does not report the rule set")


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m tests.support.wx_launch CMD [ARG...]", file=sys.stderr)
        return 2
    try:
        refuse_exec_gain()
    except OSError as exc:
        print(f"wx_launch: this kernel cannot refuse writable code ({exc})", file=sys.stderr)
        return 2
    os.execv(argv[0], argv)  # noqa: S606 - the launcher becomes the command, no shell


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
