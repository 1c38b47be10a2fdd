"""Soak: many rounds back to back on one network; memory and descriptors of every process.

A network of N partner nodes and a coordinator is built through the real CLIs
and started as separate processes with mutual TLS on loopback
(`tests/support/netlab.py`). Rounds then run one after another with
`psi-coordinator round run --json`; after each, every process's resident
memory (VmRSS) and open file descriptors (/proc/PID/fd) are read, for the
server process and for its tree (a node's threads; it starts no worker processes), with
its thread count. Every round's flagged counts are checked against the
planted ground truth; a wrong count stops the soak.

Reported per process: the figures after every round, and a summary --
first and last round, the least-squares slope of RSS per round over the
rounds after warm-up (--warmup, default 3), and the range of descriptors and
threads after warm-up. A process that leaks shows a steady positive slope
and climbing descriptor counts; allocator noise shows as a slope near zero.

    python -m benchmarks.soak --partners 6 --records 2000 --rounds 20 --json soak.json

Progress goes to stderr, the tables to stdout. All data is synthetic.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tests.support.netlab import (
    LocalNetwork,
    NetlabError,
    NetworkSpec,
    PurposeSpec,
    Resources,
    bench_partners,
)

PURPOSE = "soak"
MIB = 1024 * 1024

_started = time.monotonic()


def progress(message: str) -> None:
    """One progress line on stderr, with the seconds since the soak started."""
    print(f"[{time.monotonic() - _started:7.1f}s] {message}", file=sys.stderr, flush=True)


def slope(values: Sequence[float]) -> float:
    """Least-squares slope of values against their index (0 for fewer than two)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x = (n - 1) / 2
    mean_y = sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


def network_spec(partners: int, records: int, seed: int) -> NetworkSpec:
    """N partners of `records` rows; households at 2, 3 and 4 partners planted."""
    overlaps = {2: records // 10, 3: records // 40, 4: records // 100}
    return NetworkSpec(
        network="soak",
        partners=bench_partners(partners, records),
        overlaps={k: v for k, v in overlaps.items() if k <= partners and v},
        purposes=(PurposeSpec(id=PURPOSE, max_set_size=max(records, 1)),),
        seed=seed,
        workers=1,
        log_level="warning",
    )


def soak(net: LocalNetwork, rounds: int) -> list[dict[str, Any]]:
    """Run `rounds` rounds; per round its seconds and every process's Resources after it."""
    expected = net.expected_flagged(2)
    samples = [{"round": 0, "seconds": 0.0, "resources": net.resources()}]
    for i in range(1, rounds + 1):
        run = net.run_round(PURPOSE, reason=f"soak round {i}")
        flagged = {p: v["flagged_count"] for p, v in run.summary["partners"].items()}
        if flagged != expected:
            raise NetlabError(f"round {i}: flagged {flagged}, expected {expected}")
        samples.append({"round": i, "seconds": run.seconds, "resources": net.resources()})
        progress(f"round {i}/{rounds}: {run.seconds:.2f} s")
    return samples


def summarise(samples: list[dict[str, Any]], warmup: int) -> dict[str, dict[str, Any]]:
    """Per process: first/last figures, RSS slope after warm-up, fd and thread ranges."""
    out: dict[str, dict[str, Any]] = {}
    names = list(samples[0]["resources"])
    steady = [s for s in samples if s["round"] > warmup] or samples[-1:]
    for name in names:
        res: list[Resources] = [s["resources"][name] for s in samples]
        warm: list[Resources] = [s["resources"][name] for s in steady]
        out[name] = {
            "rss_mib_start": res[0].rss_bytes / MIB,
            "rss_mib_after_round_1": res[1].rss_bytes / MIB if len(res) > 1 else None,
            "rss_mib_last": res[-1].rss_bytes / MIB,
            "rss_kib_per_round_after_warmup": slope([r.rss_bytes / 1024 for r in warm]),
            "rss_kib_per_round_last_half": slope(
                [r.rss_bytes / 1024 for r in res[len(res) // 2 :]]
            ),
            "tree_rss_mib_last": res[-1].tree_rss_bytes / MIB,
            "tree_rss_kib_per_round_after_warmup": slope([r.tree_rss_bytes / 1024 for r in warm]),
            "fds_range_after_warmup": [min(r.fds for r in warm), max(r.fds for r in warm)],
            "tree_fds_range_after_warmup": [
                min(r.tree_fds for r in warm),
                max(r.tree_fds for r in warm),
            ],
            "threads_range_after_warmup": [
                min(r.threads for r in warm),
                max(r.threads for r in warm),
            ],
            "processes_range": [min(r.processes for r in res), max(r.processes for r in res)],
        }
    return out


def render(samples: list[dict[str, Any]], summary: dict[str, dict[str, Any]]) -> str:
    """Two tables: RSS/fds per round per process, then the per-process summary."""
    names = list(samples[0]["resources"])
    width = max(11, *(len(n) for n in names))
    lines = ["RSS MiB (process) / open fds (process), after each round (round 0: before any)"]
    lines.append(f"{'round':>5} {'secs':>6}  " + "  ".join(f"{n:>{width}}" for n in names))
    for s in samples:
        cells = [
            f"{s['resources'][n].rss_bytes / MIB:6.1f}/{s['resources'][n].fds:<3d}" for n in names
        ]
        lines.append(
            f"{s['round']:>5} {s['seconds']:6.2f}  " + "  ".join(f"{c:>{width}}" for c in cells)
        )
    lines.append("")
    lines.append(
        f"{'process':<{width}} {'RSS start':>9} {'RSS last':>9} {'KiB/round':>9} {'2nd half':>8} "
        f"{'tree last':>9} {'tree KiB/r':>10} {'fds':>7} {'tree fds':>9} "
        f"{'threads':>7} {'procs':>5}"
    )
    for n in names:
        v = summary[n]
        fds, tfds, thr, procs = (
            v["fds_range_after_warmup"],
            v["tree_fds_range_after_warmup"],
            v["threads_range_after_warmup"],
            v["processes_range"],
        )
        lines.append(
            f"{n:<{width}} {v['rss_mib_start']:9.1f} {v['rss_mib_last']:9.1f} "
            f"{v['rss_kib_per_round_after_warmup']:9.1f} {v['rss_kib_per_round_last_half']:8.1f} "
            f"{v['tree_rss_mib_last']:9.1f} "
            f"{v['tree_rss_kib_per_round_after_warmup']:10.1f} "
            f"{fds[0]:>3}-{fds[1]:<3} {tfds[0]:>4}-{tfds[1]:<4} {thr[0]:>3}-{thr[1]:<3} "
            f"{procs[0]}-{procs[1]}"
        )
    lines.append(
        "(MiB = 2^20 bytes; KiB/round: least-squares slope of RSS after warm-up; "
        "2nd half: over the last half of the rounds)\n"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--partners", type=int, default=6, help="partner nodes (default 6)")
    parser.add_argument("--records", type=int, default=2000, help="rows per node (default 2000)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds back to back (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="rounds left out of the slopes")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the network's folder")
    args = parser.parse_args(argv)
    if args.partners < 2 or args.records < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("need at least 2 partners, 1 record, 1 round and warm-up >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="kruispunt-soak-"))
    spec = network_spec(args.partners, args.records, args.seed)
    progress(f"network of {args.partners} x {args.records} in {root}")
    try:
        with LocalNetwork(root, spec) as net:
            net.build()
            net.start()
            progress("started; soaking")
            samples = soak(net, args.rounds)
    except NetlabError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    summary = summarise(samples, args.warmup)
    print(render(samples, summary))
    if args.json:
        doc = {
            "partners": args.partners,
            "records": args.records,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "samples": [
                {
                    "round": s["round"],
                    "seconds": round(s["seconds"], 3),
                    "resources": {n: asdict(r) for n, r in s["resources"].items()},
                }
                for s in samples
            ],
            "summary": summary,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        progress(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
