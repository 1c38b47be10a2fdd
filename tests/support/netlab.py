"""A local Kruispunt network on loopback, built and run through the real CLIs.

What `make demo`, `benchmarks/round_bench.py` and `benchmarks/sweep.py` share:
a coordinator and N partner nodes set up the way partners would do it
(`psi-coordinator init`, `psi-node init`, `psi-coordinator partner add` with
the node's CSR and public keys, `psi-node install-cert`, `psi-coordinator roster
export` and `psi-node roster accept --digest` at every node,
`psi-coordinator purpose add`), each
node fed a synthetic export, every node and the coordinator started as its
own process with mutual TLS on 127.0.0.1, rounds run with
`psi-coordinator round run DIR PURPOSE --json`, and everything stopped again.

`LocalNetwork.stats()` reads each server's CPU time and peak resident
memory from /proc -- the server process and any descendants (a node does
its elliptic-curve work on threads of its own process, so a test that it starts
no child process can count them) -- so benchmarks can ask what a round cost
per server before the processes go away;
`resources()` reads what each holds now (resident memory, open file
descriptors), for leak checks across many rounds. All data is synthetic.

Fault tests use the process controls: `signal()` (SIGSTOP/SIGCONT a server,
or its whole process tree), `kill()` (SIGKILL, as a crash), `restart()`,
`configure_rounds()` (coordinator.toml [rounds] limits), `start_round()`
(a `round run` in the background) and `latest_round()` (phase and progress
from the coordinator's database, read-only, as `round show` reads them).

    spec = NetworkSpec(partners=bench_partners(3, 10_000), overlaps={2: 1000},
                       purposes=(PurposeSpec(id="bench", max_set_size=10_000),))
    with LocalNetwork(root, spec) as net:
        net.build()
        net.start()
        run = net.run_round("bench")
        print(run.summary["phases"], net.stats())
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from coordinator.store import RoundRow, Store
from kruispunt.identifiers import FIELDS, IdentifierKind, canonicalize
from tests.support.setup_files import LEGAL_BASIS, append_policies, policy_block, purpose_toml
from tests.support.synthetic import OverlapKey, SyntheticNetwork, make_network, write_csv

BIN = Path(sys.executable).parent
DEFAULT_BASIS = LEGAL_BASIS
STARTUP_SECONDS = 60.0
STOP_SECONDS = 20.0
GONE_SECONDS = 10.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


class NetlabError(RuntimeError):
    """A CLI call, a server start or a round failed; the message says which and why."""


@dataclass(frozen=True)
class PartnerSpec:
    """One partner: its id, organisation name, number of export rows and legal basis."""

    id: str
    name: str
    size: int
    legal_basis: str = DEFAULT_BASIS
    bom: bool = False
    """Write its export with a UTF-8 byte-order mark (as Excel does)."""


@dataclass(frozen=True)
class PurposeSpec:
    """A purpose registered at the coordinator and agreed by every node's policy."""

    id: str
    max_set_size: int
    description: str = "Vroegsignalering: huishoudens met signalen bij meerdere partners"
    threshold: int = 2
    disclosure: str = "partners"
    result_retention_days: int = 28
    covenant_id: str = "Convenant Vroegsignalering (synthetic)"
    dpia_reference: str = "DPIA-VS-2026-01 (synthetic)"
    mode: str = "network"
    bilateral: Mapping[str, str | float | bool] | None = None
    """The [bilateral] table of a two-party purpose (client_partner, server_partner, ...)."""
    seed: int | None = None
    """With seed or overlaps set, every node gets an export of its own for this purpose
    (same partners and sizes, households drawn from this seed; default the network's)."""
    overlaps: Mapping[OverlapKey, int] | None = None
    """Planted overlaps of this purpose's own export (default the network's)."""

    @property
    def own_input(self) -> bool:
        """Whether this purpose reads an export of its own rather than the shared one."""
        return self.seed is not None or self.overlaps is not None


@dataclass(frozen=True)
class NetworkSpec:
    """A whole network: partners, planted overlaps, purposes and node settings."""

    partners: tuple[PartnerSpec, ...]
    overlaps: Mapping[OverlapKey, int]
    purposes: tuple[PurposeSpec, ...]
    network: str = "netlab"
    kind: IdentifierKind = "address"
    seed: int = 2026
    workers: int | None = 1
    """Threads of each node's native core (node.toml `workers`); None leaves the default."""
    objected_every: int = 0
    """Mark rows 0, k, 2k, ... of every export as objected (0: none)."""
    log_level: str = "info"
    phase_timeout_seconds: float | None = None
    """coordinator.toml [rounds] phase_timeout_seconds (None keeps `init`'s default)."""
    launcher: tuple[str, ...] = ()
    """A command every server is started through, its own command appended (as
    `tests.support.wx_launch` starts them under W^X); empty: started directly."""


@dataclass(frozen=True)
class ProcStats:
    """What /proc says about one server process, or about it and its descendants."""

    pid: int
    cpu_seconds: float
    """utime + stime since the process started, plus that of children it has reaped
    (cutime + cstime); for a tree, summed over every live process in it."""
    peak_rss_bytes: int
    """VmHWM of the process itself: the most resident memory it ever had."""
    rss_bytes: int
    """VmRSS of the process itself, now."""
    tree_peak_rss_bytes: int = 0
    """Sum of VmHWM over the process and its live descendants (an upper bound: peaks
    at different moments, and pages shared after fork, are all counted)."""
    processes: int = 1
    """Live processes counted: the server and its descendants (a node has none)."""


@dataclass(frozen=True)
class RoundRun:
    """A finished round: the coordinator's summary (`round run --json`) and the CLI's wall time."""

    summary: dict[str, Any]
    wall_seconds: float

    @property
    def seconds(self) -> float:
        """The round's own duration as the coordinator measured it (propose to deliver)."""
        return float(self.summary["seconds"])


@dataclass(frozen=True)
class RoundOutcome:
    """How a `round run --json` ended, whatever the round's state."""

    returncode: int
    summary: dict[str, Any] | None
    """The coordinator's summary; None if the CLI got none (e.g. the coordinator died)."""
    stderr: str
    wall_seconds: float

    @property
    def state(self) -> str:
        """The round's terminal state ("completed", "failed", ...), or "" without a summary."""
        return str(self.summary.get("state", "")) if self.summary else ""

    @property
    def reason(self) -> str:
        """Why the round ended without results ("" if it completed or gave no summary)."""
        return str(self.summary.get("reason", "")) if self.summary else ""


@dataclass
class RoundProcess:
    """A `psi-coordinator round run --json` running in the background."""

    purpose: str
    proc: subprocess.Popen[str]
    started: float

    def running(self) -> bool:
        """Whether the CLI is still waiting for the round."""
        return self.proc.poll() is None

    def wait(self, timeout: float | None = None) -> RoundOutcome:
        """Wait for the CLI (NetlabError after `timeout` seconds) and parse its summary."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise NetlabError(
                f"`round run {self.purpose}` did not end within {timeout} s"
            ) from None
        wall = time.monotonic() - self.started
        try:
            summary = json.loads(out)
        except json.JSONDecodeError:
            summary = None
        return RoundOutcome(
            self.proc.returncode, summary if isinstance(summary, dict) else None, err, wall
        )


@dataclass(frozen=True)
class Resources:
    """What one server holds right now, from /proc: resident memory and open descriptors."""

    pid: int
    rss_bytes: int
    """VmRSS of the server process itself."""
    fds: int
    """Entries in /proc/PID/fd of the server process (sockets, files, pipes)."""
    threads: int
    """Threads of the server process."""
    tree_rss_bytes: int
    """VmRSS summed over the process and its live descendants."""
    tree_fds: int
    """Open descriptors summed over the process and its live descendants."""
    processes: int
    """Live processes counted in the tree sums."""


def bench_partners(n: int, size: int, *, basis: str = DEFAULT_BASIS) -> tuple[PartnerSpec, ...]:
    """n partners p01, p02, ... of `size` rows each."""
    width = max(2, len(str(n)))
    return tuple(
        PartnerSpec(f"p{i:0{width}d}", f"Partner {i} (synthetic)", size, basis)
        for i in range(1, n + 1)
    )


def pair_overlaps(n: int, size: int, fraction: float) -> dict[OverlapKey, int]:
    """Overlaps that put about `fraction` of each partner's rows in households held by two.

    With n = 2 exactly `fraction * size` households are shared; with more
    partners every shared household sits at a random pair, so each partner
    shares about that fraction (the exact split follows the seed).
    """
    if not 0 <= fraction < 1:
        raise ValueError("overlap fraction must be in [0, 1)")
    return {2: round(fraction * size * n / 2)} if n >= 2 and fraction > 0 else {}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_proc(pid: int) -> ProcStats:
    """CPU seconds and peak/current RSS of a live process, from /proc/PID/stat and status."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError as exc:
        raise NetlabError(f"process {pid} is gone ({exc.strerror})") from None
    # Field 2 (comm) may hold spaces; everything after its closing ")" splits cleanly.
    fields = stat[stat.rindex(")") + 2 :].split()
    # Fields 14-17 of proc(5): utime, stime, cutime, cstime (clock ticks).
    ticks = sum(int(f) for f in fields[11:15])
    kib = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            kib[key] = int(value.split()[0])
    peak = kib.get("VmHWM", 0) * 1024
    return ProcStats(
        pid=pid,
        cpu_seconds=ticks / _CLK_TCK,
        peak_rss_bytes=peak,
        rss_bytes=kib.get("VmRSS", 0) * 1024,
        tree_peak_rss_bytes=peak,
    )


def descendants(pid: int) -> list[int]:
    """Process ids of every live descendant of pid (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        out.append(child)
        todo.extend(children.get(child, []))
    return sorted(out)


def open_fds(pid: int) -> int:
    """How many file descriptors a live process has open (entries of /proc/PID/fd).

    Only a reader that may ptrace the process may list them: a server clears its
    dumpable flag (`kruispunt.hardening`), so without root the list is refused, and
    NetlabError says so rather than call the process gone.
    """
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except PermissionError as exc:
        raise NetlabError(
            f"cannot list /proc/{pid}/fd ({exc.strerror}): process {pid} is non-dumpable "
            "(or another user's); run as root, the servers are non-dumpable"
        ) from None
    except OSError as exc:
        raise NetlabError(f"process {pid} is gone ({exc.strerror})") from None


def read_resources(pid: int) -> Resources:
    """Resident memory, open descriptors and threads of pid, and the sums over its tree."""
    root = read_proc(pid)
    fds = open_fds(pid)
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError as exc:
        raise NetlabError(f"process {pid} is gone ({exc.strerror})") from None
    threads = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("Threads:")), 0
    )
    rss, tree_fds, count = root.rss_bytes, fds, 1
    for child in descendants(pid):
        try:
            child_rss, child_fds = read_proc(child).rss_bytes, open_fds(child)
        except NetlabError:  # exited while we looked
            continue
        rss += child_rss
        tree_fds += child_fds
        count += 1
    return Resources(
        pid=pid,
        rss_bytes=root.rss_bytes,
        fds=fds,
        threads=threads,
        tree_rss_bytes=rss,
        tree_fds=tree_fds,
        processes=count,
    )


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def read_results(path: Path, kind: IdentifierKind) -> dict[bytes, frozenset[str]]:
    """A node's result file: canonical identifier of every flagged row -> co-holding partners.

    Undoes the results writer's spreadsheet guard (a leading "'") before
    canonicalising; the co-holders are empty for a `count` disclosure.
    """
    out: dict[bytes, frozenset[str]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter=";")
        for row in reader:
            fields = {
                f: v[1:] if v.startswith("'") else v
                for f, v in row.items()
                if f in FIELDS[kind] and v is not None
            }
            partners = row.get("partners") or ""
            out[canonicalize(kind, fields)] = frozenset(partners.split())
    return out


def read_tree(pid: int) -> ProcStats:
    """read_proc of pid, with CPU and peak RSS summed over its live descendants too.

    A process's own /proc entry does not see a child's CPU until it is reaped,
    so a round's cost is the tree's; a node runs its elliptic-curve work on
    threads of its own process, so its tree is the node alone.
    """
    root = read_proc(pid)
    cpu, peaks, count = root.cpu_seconds, root.peak_rss_bytes, 1
    for child in descendants(pid):
        try:
            s = read_proc(child)
        except NetlabError:  # exited while we looked
            continue
        cpu += s.cpu_seconds
        peaks += s.peak_rss_bytes
        count += 1
    return ProcStats(
        pid=pid,
        cpu_seconds=cpu,
        peak_rss_bytes=root.peak_rss_bytes,
        rss_bytes=root.rss_bytes,
        tree_peak_rss_bytes=peaks,
        processes=count,
    )


@dataclass
class _Server:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    log_file: IO[bytes]
    argv: list[str]
    port: int
    env: dict[str, str]
    orphans: list[int] = field(default_factory=list)
    """Descendants left running when the server was killed (none for a node now)."""


@dataclass
class LocalNetwork:
    """A network in `root`: build it, start it, run rounds, read process stats, stop it.

    Use it as a context manager so that every process is stopped even when a
    step fails. Nothing is removed from `root`.
    """

    root: Path
    spec: NetworkSpec
    env: Mapping[str, str] | None = None
    """Environment for the servers (default: ours with KRUISPUNT_LOG_LEVEL from the spec)."""
    ports: dict[str, int] = field(default_factory=dict)
    admin_port: int = 0
    _data: SyntheticNetwork | None = None
    _purpose_data: dict[str, SyntheticNetwork] = field(default_factory=dict)
    _servers: list[_Server] = field(default_factory=list)

    # -- layout --------------------------------------------------------------------------

    @property
    def coordinator_dir(self) -> Path:
        return self.root / "coordinator"

    def node_dir(self, pid: str) -> Path:
        return self.root / "nodes" / pid

    @property
    def data(self) -> SyntheticNetwork:
        """The synthetic exports and their ground truth (made on first use, by seed)."""
        if self._data is None:
            spec = self.spec
            self._data = make_network(
                [p.id for p in spec.partners],
                {p.id: p.size for p in spec.partners},
                spec.overlaps,
                seed=spec.seed,
                kind=spec.kind,
            )
        return self._data

    def _purpose(self, purpose: str) -> PurposeSpec:
        for spec in self.spec.purposes:
            if spec.id == purpose:
                return spec
        raise NetlabError(f"no purpose {purpose!r} in the network spec")

    def data_for(self, purpose: str | None = None) -> SyntheticNetwork:
        """The exports a purpose's rounds read: its own, or (None, or none of its own) `data`."""
        spec = self._purpose(purpose) if purpose is not None else None
        if spec is None or not spec.own_input:
            return self.data
        if spec.id not in self._purpose_data:
            self._purpose_data[spec.id] = make_network(
                [p.id for p in self.spec.partners],
                {p.id: p.size for p in self.spec.partners},
                spec.overlaps if spec.overlaps is not None else self.spec.overlaps,
                seed=spec.seed if spec.seed is not None else self.spec.seed,
                kind=self.spec.kind,
            )
        return self._purpose_data[spec.id]

    @staticmethod
    def export_name(purpose: PurposeSpec) -> str:
        """File name of the export a purpose reads, in each node's export/ folder."""
        return f"{purpose.id}.csv" if purpose.own_input else "signalen.csv"

    def objected(self, pid: str) -> range:
        """Row indices of `pid`'s export marked as objected."""
        every = self.spec.objected_every
        return range(0, len(self.data.rows[pid]), every) if every else range(0)

    def kept_ids(self, purpose: str | None = None) -> dict[str, list[bytes]]:
        """Per partner, the canonical identifiers that may leave the node, in export order."""
        data = self.data_for(purpose)
        out = {}
        for p in self.spec.partners:
            gone = set(self.objected(p.id))
            out[p.id] = [cid for i, cid in enumerate(data.ids[p.id]) if i not in gone]
        return out

    def expected_flagged(self, threshold: int, purpose: str | None = None) -> dict[str, int]:
        """Per partner, how many records a correct round at `threshold` flags."""
        return {p: len(found) for p, found in self.expected_results(threshold, purpose).items()}

    def expected_results(
        self, threshold: int, purpose: str | None = None
    ) -> dict[str, dict[bytes, frozenset[str]]]:
        """Per partner, what a correct round writes: flagged identifier -> co-holding partners.

        The ground truth planted in the exports, minus the rows marked as
        objected (they never leave their node, so they count at no partner).
        """
        kept = self.kept_ids(purpose)
        holders: dict[bytes, set[str]] = {}
        for pid, ids in kept.items():
            for cid in ids:
                holders.setdefault(cid, set()).add(pid)
        return {
            pid: {
                cid: frozenset(holders[cid] - {pid})
                for cid in ids
                if len(holders[cid]) >= threshold
            }
            for pid, ids in kept.items()
        }

    # -- CLI -----------------------------------------------------------------------------

    def cli(self, *args: str) -> str:
        """Run one of our console scripts; NetlabError with its output if it fails."""
        proc = subprocess.run(
            [str(BIN / args[0]), *args[1:]], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise NetlabError(f"`{' '.join(args)}` failed:\n{proc.stderr or proc.stdout}")
        return proc.stdout

    # -- building ------------------------------------------------------------------------

    def build(self, on_partner: Callable[[PartnerSpec, int], None] | None = None) -> None:
        """Coordinator, every partner (calling `on_partner(spec, port)` after each), the
        roster accepted at every node, purposes."""
        self.init_coordinator()
        for partner in self.spec.partners:
            self.add_partner(partner)
            if on_partner is not None:
                on_partner(partner, self.ports[partner.id])
        self.publish_roster()
        for purpose in self.spec.purposes:
            self.add_purpose(purpose)

    def publish_roster(self) -> dict[str, Any]:
        """`psi-coordinator roster export --json`, then `psi-node roster accept --digest` at
        every node with the digest the export printed; returns the export's JSON."""
        exported = json.loads(
            self.cli("psi-coordinator", "roster", "export", str(self.coordinator_dir), "--json")
        )
        for p in self.spec.partners:
            self.cli(
                "psi-node",
                "roster",
                "accept",
                str(self.node_dir(p.id)),
                exported["path"],
                "--digest",
                exported["digest_grouped"],
                "--json",
            )
        return dict(exported)

    @property
    def ca_key(self) -> Path:
        """The network CA key, on the lab's stand-in for offline media (init --ca-key-dir)."""
        return self.root / "offline-media" / "ca.key"

    def init_coordinator(self) -> None:
        """`psi-coordinator init`: network CA (its key on the stand-in for offline media),
        signing key, database, admin port on loopback."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.admin_port = free_port()
        self.cli(
            "psi-coordinator",
            "init",
            str(self.coordinator_dir),
            "--network",
            self.spec.network,
            "--port",
            str(self.admin_port),
            "--ca-key-dir",
            str(self.ca_key.parent),
        )
        if self.spec.phase_timeout_seconds is not None:
            self.configure_rounds(phase_timeout_seconds=self.spec.phase_timeout_seconds)

    def configure_rounds(self, **values: float) -> None:
        """Set keys of coordinator.toml's [rounds] table (they apply from the next start).

        e.g. `configure_rounds(phase_timeout_seconds=5)`: the deadline of every node call.
        """
        config = self.coordinator_dir / "coordinator.toml"
        text = config.read_text(encoding="utf-8")
        head, sep, tail = text.partition("[rounds]\n")
        if not sep:
            raise NetlabError(f"{config} has no [rounds] table")
        body, nxt, rest = tail.partition("\n[")
        for key, value in values.items():
            line = f"{key} = {value!r}"
            body, n = re.subn(rf"(?m)^{re.escape(key)}\s*=.*$", line, body)
            if n == 0:
                body = f"{line}\n{body}"
        config.write_text(head + sep + body + nxt + rest, encoding="utf-8")

    def add_partner(self, partner: PartnerSpec) -> None:
        """Node keys and CSR, certificate from the coordinator, export file, node.toml policy."""
        pid, node, coord = partner.id, self.node_dir(partner.id), self.coordinator_dir
        port = self.ports[pid] = free_port()
        self.cli(
            "psi-node",
            "init",
            str(node),
            "--partner",
            pid,
            "--name",
            partner.name,
            "--port",
            str(port),
        )
        self.cli(
            "psi-coordinator",
            "partner",
            "add",
            str(coord),
            pid,
            "--name",
            partner.name,
            "--address",
            f"127.0.0.1:{port}",
            "--csr",
            str(node / "tls/node.csr"),
            "--signing-key",
            str(node / "signing/node.pub"),
            "--agreement-key",
            str(node / "signing/node.x25519.pub"),
            "--ca-key",
            str(self.ca_key),
        )
        self.cli(
            "psi-node",
            "install-cert",
            str(node),
            "--cert",
            str(coord / "partners" / f"{pid}.crt"),
            "--ca",
            str(coord / "ca/ca.crt"),
            "--coordinator-key",
            str(coord / "signing/coordinator.pub"),
        )
        (node / "export").mkdir(exist_ok=True)
        exports = {self.export_name(p): p.id if p.own_input else None for p in self.spec.purposes}
        if not exports:
            exports["signalen.csv"] = None
        for name, purpose_id in exports.items():
            write_csv(
                node / "export" / name,
                self.data_for(purpose_id).rows[pid],
                self.spec.kind,
                objection_column="bezwaar",
                objected=self.objected(pid),
                bom=partner.bom,
                delimiter=";",
            )
        blocks = [self.policy_for(partner, purpose) for purpose in self.spec.purposes]
        append_policies(node / "node.toml", blocks, workers=self.spec.workers, loopback=True)

    def policy_for(self, partner: PartnerSpec, purpose: PurposeSpec) -> str:
        """node.toml [inputs.X] and [policy.X]: this node agrees to the purpose as specified."""
        extra: dict[str, Any] = {"min_threshold": 2, "max_set_size": purpose.max_set_size}
        if purpose.mode != "network":
            extra["mode"] = purpose.mode
        if purpose.bilateral is not None:
            client = purpose.bilateral.get("client_partner") == partner.id
            extra["bilateral_role"] = "client" if client else "server"
        return policy_block(
            purpose.id,
            input_path=f"export/{self.export_name(purpose)}",
            kind=self.spec.kind,
            partners=[p.id for p in self.spec.partners if p.id != partner.id],
            legal_basis=partner.legal_basis,
            **extra,
        )

    def add_purpose(self, purpose: PurposeSpec) -> None:
        """`psi-coordinator purpose add` with a legal basis for every partner."""
        fields: dict[str, Any] = {
            "id": purpose.id,
            "description": purpose.description,
            "identifier_kind": self.spec.kind,
            "threshold": purpose.threshold,
            "disclosure": purpose.disclosure,
            "result_retention_days": purpose.result_retention_days,
            "max_set_size": purpose.max_set_size,
            "covenant_id": purpose.covenant_id,
            "dpia_reference": purpose.dpia_reference,
        }
        if purpose.mode != "network":
            fields["mode"] = purpose.mode
        fields["legal_basis"] = {p.id: p.legal_basis for p in self.spec.partners}
        if purpose.bilateral is not None:
            fields["bilateral"] = dict(purpose.bilateral)
        text = purpose_toml(fields)
        path = self.root / f"purpose-{purpose.id}.toml"
        path.write_text(text, encoding="utf-8")
        self.cli("psi-coordinator", "purpose", "add", str(self.coordinator_dir), str(path))

    # -- running -------------------------------------------------------------------------

    def start(self) -> None:
        """Start every node, then the coordinator, each its own process; wait until they listen."""
        env = dict(self.env or {**os.environ, "KRUISPUNT_LOG_LEVEL": self.spec.log_level})
        for p in self.spec.partners:
            self._start(
                p.id,
                ["psi-node", "serve", str(self.node_dir(p.id))],
                self.node_dir(p.id) / "node.log",
                self.ports[p.id],
                env,
            )
        self._start(
            "coordinator",
            ["psi-coordinator", "serve", str(self.coordinator_dir)],
            self.coordinator_dir / "coordinator.log",
            self.admin_port,
            env,
        )

    def _start(self, name: str, argv: list[str], log: Path, port: int, env: dict[str, str]) -> None:
        log_file = log.open("wb")
        proc = subprocess.Popen(
            [*self.spec.launcher, str(BIN / argv[0]), *argv[1:]],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
        server = _Server(name, proc, log, log_file, argv, port, env)
        self._servers.append(server)
        self._wait_listening(server)

    def _wait_listening(self, server: _Server) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                tail = server.log.read_text(errors="replace")[-3000:]
                raise NetlabError(f"{server.name} exited early; its log ({server.log}):\n{tail}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", server.port)) == 0:
                    return
            time.sleep(0.1)
        raise NetlabError(f"{server.name} did not start listening on port {server.port}")

    def _server(self, name: str) -> _Server:
        for s in self._servers:
            if s.name == name:
                return s
        raise NetlabError(f"no server {name!r} was started")

    @property
    def pids(self) -> dict[str, int]:
        """Process id of every running server, by partner id (and "coordinator")."""
        return {s.name: s.proc.pid for s in self._servers if s.proc.poll() is None}

    def stats(self) -> dict[str, ProcStats]:
        """CPU seconds and peak RSS of every running server and its descendants, from /proc."""
        return {name: read_tree(pid) for name, pid in self.pids.items()}

    def resources(self) -> dict[str, Resources]:
        """Resident memory and open descriptors of every running server (and its tree) now."""
        return {name: read_resources(pid) for name, pid in self.pids.items()}

    # -- faults --------------------------------------------------------------------------

    def signal(self, name: str, sig: signal.Signals, *, tree: bool = False) -> list[int]:
        """Send `sig` to a running server (with `tree`, to its descendants too); the pids hit.

        SIGSTOP of the server process alone is a network partition as its
        peers see it: the socket stays open and the kernel accepts bytes, but
        nothing answers. SIGSTOP/SIGCONT of the whole tree throttles a node.
        """
        proc = self._server(name).proc
        if proc.poll() is not None:
            raise NetlabError(f"{name} is not running")
        targets = [proc.pid, *(descendants(proc.pid) if tree else [])]
        hit = []
        for pid in targets:
            try:
                os.kill(pid, sig)
                hit.append(pid)
            except ProcessLookupError:  # a worker that exited meanwhile
                continue
        return hit

    def kill(self, name: str) -> list[int]:
        """SIGKILL a server process, as a crash or the OOM killer would; returns its orphans.

        Only the server process dies. Any descendants are left as a crash leaves
        them, and remembered: `restart` and `stop` kill them, as systemd's
        control-group kill does.
        """
        server = self._server(name)
        if server.proc.poll() is not None:
            raise NetlabError(f"{name} is not running")
        children = descendants(server.proc.pid)
        server.proc.kill()
        server.proc.wait()
        server.log_file.close()
        server.orphans = [pid for pid in children if alive(pid)]
        return list(server.orphans)

    def orphans(self, name: str) -> list[int]:
        """Processes a killed server left behind that are still alive."""
        return [pid for pid in self._server(name).orphans if alive(pid)]

    def _reap_orphans(self, server: _Server) -> None:
        for pid in server.orphans:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + GONE_SECONDS
        while any(alive(pid) for pid in server.orphans) and time.monotonic() < deadline:
            time.sleep(0.05)
        server.orphans = []

    def restart(self, name: str) -> None:
        """Start a stopped or killed server again (same command, log appended); wait for it."""
        server = self._server(name)
        if server.proc.poll() is None:
            raise NetlabError(f"{name} is still running (kill or stop it first)")
        self._reap_orphans(server)
        server.log_file = server.log.open("ab")
        server.proc = subprocess.Popen(
            [*self.spec.launcher, str(BIN / server.argv[0]), *server.argv[1:]],
            stdout=server.log_file,
            stderr=subprocess.STDOUT,
            env=server.env,
        )
        self._wait_listening(server)

    def stop_server(self, name: str) -> None:
        """SIGTERM one server and wait for it (SIGKILL after STOP_SECONDS)."""
        server = self._server(name)
        self._stop_one(server)

    # -- rounds --------------------------------------------------------------------------

    def start_round(self, purpose: str, *, reason: str = "netlab") -> RoundProcess:
        """Start `psi-coordinator round run --json` in the background."""
        proc = subprocess.Popen(
            [
                str(BIN / "psi-coordinator"),
                "round",
                "run",
                str(self.coordinator_dir),
                purpose,
                "--json",
                "--reason",
                reason,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return RoundProcess(purpose, proc, time.monotonic())

    def run_round(self, purpose: str, *, reason: str = "netlab") -> RoundRun:
        """`psi-coordinator round run --json`; NetlabError unless the round completed."""
        outcome = self.start_round(purpose, reason=reason).wait()
        if outcome.returncode != 0 or outcome.summary is None:
            state = f" ({outcome.state}: {outcome.reason})" if outcome.summary else ""
            raise NetlabError(f"the round failed{state}:\n{outcome.stderr[-3000:]}")
        return RoundRun(outcome.summary, outcome.wall_seconds)

    def show_round(self, round_id: str) -> dict[str, Any]:
        """`psi-coordinator round show ROUND --json`: state, reason, phase, progress, summary."""
        data = json.loads(
            self.cli(
                "psi-coordinator", "round", "show", str(self.coordinator_dir), round_id, "--json"
            )
        )
        if not isinstance(data, dict):
            raise NetlabError("round show --json did not print an object")
        return data

    def latest_round(self, purpose: str | None = None) -> RoundRow | None:
        """The newest round (of `purpose`) as stored, read-only: cheap enough to poll."""
        store = Store(self.coordinator_dir / "coordinator.db", readonly=True)
        try:
            rows = store.rounds(purpose_id=purpose, limit=1)
        finally:
            store.close()
        return rows[0] if rows else None

    def _stop_one(self, server: _Server, *, signalled: bool = False) -> None:
        if not signalled and server.proc.poll() is None:
            server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
        server.log_file.close()
        self._reap_orphans(server)

    def stop(self) -> None:
        """SIGTERM every server, wait for each (kill after STOP_SECONDS); idempotent.

        A stopped (SIGSTOP) server is continued first so that it can shut down.
        """
        for s in self._servers:
            if s.proc.poll() is None:
                for pid in [s.proc.pid, *descendants(s.proc.pid)]:
                    try:
                        os.kill(pid, signal.SIGCONT)
                    except ProcessLookupError:
                        continue
                s.proc.send_signal(signal.SIGTERM)
        for s in self._servers:
            self._stop_one(s, signalled=True)
        self._servers.clear()

    def __enter__(self) -> LocalNetwork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


__all__: Sequence[str] = (
    "DEFAULT_BASIS",
    "LocalNetwork",
    "NetlabError",
    "NetworkSpec",
    "PartnerSpec",
    "ProcStats",
    "PurposeSpec",
    "Resources",
    "RoundOutcome",
    "RoundProcess",
    "RoundRun",
    "alive",
    "bench_partners",
    "descendants",
    "free_port",
    "open_fds",
    "pair_overlaps",
    "read_proc",
    "read_resources",
    "read_results",
    "read_tree",
)
