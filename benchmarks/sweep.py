"""`make bench-sweep`: how a real round scales with set size m and number of partners n.

Every point is a fresh network built through the real CLIs and run as
separate processes with mutual TLS on loopback, measured as
`benchmarks/round_bench.py` measures one round (same cost model, same
calibration). Two series by default:

* m-series: n = --n-fixed (2) partners, m in --m (10k ... 1M) records each,
  with openmined-psi on the same pair of sets next to it (--openmined);
* n-series: m = --m-fixed (10k) records, n in --n (2 ... 34) partners.

`--grid cross` runs every (n, m) pair instead. A point whose predicted round
time exceeds --max-predicted is skipped and listed as skipped. Results go to
--json after every point (a stopped sweep keeps what it measured) and to a
PNG chart (--png) drawn by the small pure-Python PNG writer at the end of
this file: matplotlib is not a dependency.

    python -m benchmarks.sweep --quick
    python -m benchmarks.sweep --json docs/perf/sweep.json --png docs/perf/sweep.png
    python -m benchmarks.sweep --from-json docs/perf/sweep.json --png docs/perf/sweep.png
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import struct
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import round_bench as rb
from tests.support.netlab import NetlabError

DEFAULT_M = (10_000, 30_000, 100_000, 300_000, 1_000_000)
DEFAULT_N = (2, 3, 5, 10, 20, 34)
QUICK_M = (1_000, 3_000, 10_000)
QUICK_N = (2, 3, 5)
# A round reaches roughly this share of its ideal on a quiet machine; predictions use it.
PREDICTION_EFFICIENCY = 0.7


@dataclass(frozen=True)
class Point:
    series: str
    """"m" (set size varies), "n" (partners vary) or "grid"."""
    n: int
    m: int


def plan(args: argparse.Namespace) -> list[Point]:
    """The points to run, in order, without duplicates (a point in both series runs once)."""
    points: list[Point] = []
    if args.grid == "cross":
        points = [Point("grid", n, m) for m in args.m for n in args.n]
    else:
        points = [Point("m", args.n_fixed, m) for m in args.m]
        points += [Point("n", n, args.m_fixed) for n in args.n]
    seen: set[tuple[int, int]] = set()
    out = []
    for p in points:
        if (p.n, p.m) not in seen:
            seen.add((p.n, p.m))
            out.append(p)
    return out


def predicted_seconds(cal: rb.Calibration, n: int, m: int) -> float:
    """Expected round time: the ideal at PREDICTION_EFFICIENCY."""
    mults, hashes = rb.cost_model([m] * n)
    return cal.ideal(mults, hashes, rb.cores()) / PREDICTION_EFFICIENCY


def run_point(
    point: Point, args: argparse.Namespace, cal: rb.Calibration, openmined: bool
) -> dict[str, Any]:
    """Build, start, run and stop one network; the measurement as a dict."""
    workers = rb.resolve_workers(args.workers, point.n)
    spec = rb.network_spec(
        point.n,
        point.m,
        args.overlap,
        min(args.threshold, point.n),
        workers,
        kind=args.kind,
        seed=args.seed,
        bilateral=False,
    )
    t0 = time.monotonic()
    run = rb.start_network(spec)
    setup_seconds = time.monotonic() - t0
    try:
        r = rb.measure(
            run.net, rb.NETWORK_PURPOSE, "network", check=args.check, wait_quiet=args.wait_quiet
        )
        pair = run.net.kept_ids() if openmined else None
    finally:
        run.stop()
    r.apply_cost_model(cal, rb.cores())
    out = {"series": point.series, "n": point.n, "m": point.m, "workers": workers}
    out |= r.as_dict()
    out["setup_seconds"] = round(setup_seconds, 1)
    out["per_node_cpu_seconds"] = round(
        sum(c.cpu_seconds for p, c in r.processes.items() if p != "coordinator") / point.n, 2
    )
    out["max_node_peak_rss_mib"] = max(
        c.peak_rss_mib for p, c in r.processes.items() if p != "coordinator"
    )
    out["coordinator_peak_rss_mib"] = r.processes["coordinator"].peak_rss_mib
    if pair is not None:
        om = rb.openmined_baseline(
            pair["p01"], pair["p02"], [args.openmined], wait_quiet=args.wait_quiet
        )
        out["openmined"] = om["runs"][0]
    return out


def run_sweep(args: argparse.Namespace) -> dict[str, Any]:
    """Run every planned point; write the JSON after each one."""
    points = plan(args)
    doc: dict[str, Any] = {
        "benchmark": "sweep",
        "machine": rb.machine_info(),
        "parameters": {
            "grid": args.grid,
            "m": list(args.m),
            "n": list(args.n),
            "n_fixed": args.n_fixed,
            "m_fixed": args.m_fixed,
            "overlap": args.overlap,
            "threshold": args.threshold,
            "workers": args.workers,
            "kind": args.kind,
            "seed": args.seed,
            "openmined": args.openmined,
            "max_predicted": args.max_predicted,
            "wait_quiet": args.wait_quiet,
        },
        "points": [],
        "skipped": [],
    }
    base = json.loads(args.merge.read_text(encoding="utf-8")) if args.merge else None
    if base is not None:
        # Keep the earlier run's points except those measured again now.
        again = {(p.n, p.m) for p in points}
        doc["parameters"] = base["parameters"]
        doc["merged_runs"] = [
            *base.get("merged_runs", []),
            {"machine": doc["machine"], "points": sorted(again)},
        ]
        doc["points"] = [p for p in base["points"] if (p["n"], p["m"]) not in again]
        doc["skipped"] = [p for p in base["skipped"] if (p["n"], p["m"]) not in again]
    rb.progress(f"sweep: {len(points)} points; calibrating the thread pool")
    from tests.support.synthetic import make_network

    sample = make_network(["a"], rb.CALIBRATION_POINTS, {}, seed=args.seed, kind=args.kind).ids["a"]
    cal = rb.calibrate(sample, wait_quiet=args.wait_quiet)
    doc["calibration"] = asdict(cal)
    for i, point in enumerate(points, 1):
        guess = predicted_seconds(cal, point.n, point.m)
        if guess > args.max_predicted:
            rb.progress(
                f"[{i}/{len(points)}] skip n={point.n} m={point.m:,}: predicted {guess:,.0f} s "
                f"> --max-predicted {args.max_predicted:,.0f}"
            )
            doc["skipped"].append({**asdict(point), "predicted_seconds": round(guess, 1)})
            continue
        rb.progress(f"[{i}/{len(points)}] n={point.n} m={point.m:,} (predicted ~{guess:,.0f} s)")
        openmined = bool(args.openmined) and point.series in ("m", "grid") and point.n == 2
        try:
            result = run_point(point, args, cal, openmined)
        except NetlabError as exc:
            rb.progress(f"n={point.n} m={point.m:,} failed: {str(exc).splitlines()[0]}")
            doc["skipped"].append({**asdict(point), "error": str(exc)[:2000]})
            continue
        result["predicted_seconds"] = round(guess, 1)
        doc["points"].append(result)
        doc["points"].sort(key=lambda p: (p["series"] != "m", p["n"], p["m"]))
        rb.progress(
            f"n={point.n} m={point.m:,}: {result['seconds']:.1f} s, "
            f"{result['records_per_second']:,.0f} records/s, efficiency {result['efficiency']:.2f}"
        )
        if args.json:
            write_json(args.json, doc)
    rb.progress("calibrating again")
    cal = rb.merge_calibrations(cal, rb.calibrate(sample, wait_quiet=args.wait_quiet))
    if base is not None:
        cal = rb.merge_calibrations(cal, rb.Calibration(**base["calibration"]))
    for other in rb.load_calibrations(args.calibration_from):
        cal = rb.merge_calibrations(cal, other)
    doc["calibration_sources"] = [
        *(base or {}).get("calibration_sources", []),
        "this run",
        *map(str, args.calibration_from),
    ]
    recompute(doc, cal)
    return doc


def recompute(doc: dict[str, Any], cal: rb.Calibration) -> None:
    """Ideal times and efficiencies of every point with one (the cheapest) calibration."""
    doc["calibration"] = asdict(cal)
    for p in doc["points"]:
        p["ideal_seconds"] = cal.ideal(p["mults"], p["hashes"], cal.cores)
        cpu = sum(c["cpu_seconds"] for c in p["processes"].values())
        p |= rb.efficiency_figures(p["ideal_seconds"], p["seconds"], p["phases"], cpu, cal.cores)


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def render(doc: dict[str, Any]) -> str:
    """The readable table of a sweep."""
    mach, cal = doc["machine"], doc["calibration"]
    lines = [
        f"Kruispunt round sweep -- {mach['nproc']} cores, {mach['cpu_model']}, {mach['date']}",
        f"per-core cost, all cores busy: scalar mult {cal['mult_seconds'] * 1e6:.1f} us, "
        f"hash-to-group {cal['hash_seconds'] * 1e6:.1f} us",
        "",
        f"{'series':<7}{'n':>4}{'m':>10}{'round s':>9}{'records/s':>11}{'ideal s':>9}{'eff':>6}"
        f"{'eff*':>6}{'cpuEff':>7}{'util':>6}{'node CPU s':>11}{'node RSS':>9}{'coord RSS':>10}"
        f"{'openmined s':>12}{'ok':>4}{'others':>7}",
    ]
    for p in doc["points"]:
        om = p.get("openmined")
        ok = {True: "yes", False: "NO", None: "-"}[p["correct"]]
        om_s = f"{om['seconds']:.1f}" if om else "-"
        lines.append(
            f"{p['series']:<7}{p['n']:>4}{p['m']:>10,}{p['seconds']:>9.1f}"
            f"{p['records_per_second']:>11,.0f}{p['ideal_seconds']:>9.1f}{p['efficiency']:>6.2f}"
            f"{p['crypto_efficiency']:>6.2f}{p.get('cpu_efficiency', 0):>7.2f}"
            f"{p.get('utilisation', 0):>6.2f}{p['per_node_cpu_seconds']:>11.1f}"
            f"{p['max_node_peak_rss_mib']:>9,.0f}{p['coordinator_peak_rss_mib']:>10,.0f}"
            f"{om_s:>12}{ok:>4}{p['others_during']:>7.2f}"
        )
    for s in doc["skipped"]:
        why = f"predicted {s['predicted_seconds']:,.0f} s" if "predicted_seconds" in s else "failed"
        lines.append(f"{s['series']:<7}{s['n']:>4}{s['m']:>10,}   skipped ({why})")
    lines += [
        "",
        "eff = ideal / round s; eff* = ideal / (blind + evaluate + finalize); RSS in MiB (peak);",
        "cpuEff = ideal x cores / servers' CPU s; util = servers' CPU s / (round s x cores);",
        "node CPU s = mean CPU seconds per node; others = cores used by other processes (noise)",
    ]
    return "\n".join(lines)


# -- chart: a tiny PNG writer (zlib + struct) with lines, markers and a 5x7 font -----------

RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)
BLACK: RGB = (0, 0, 0)
GRID: RGB = (225, 225, 225)
AXIS: RGB = (90, 90, 90)
BLUE: RGB = (31, 119, 180)
ORANGE: RGB = (230, 120, 20)
GREY: RGB = (150, 150, 150)
GREEN: RGB = (44, 160, 44)
NOISY_CORES = 0.5

# 5x7 glyphs, one 5-bit row per entry, top row first (bit 4 = leftmost pixel).
_FONT: dict[str, tuple[int, ...]] = {
    "A": (0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11),
    "B": (0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E),
    "C": (0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E),
    "D": (0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E),
    "E": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F),
    "F": (0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10),
    "G": (0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F),
    "H": (0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11),
    "I": (0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "J": (0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C),
    "K": (0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11),
    "L": (0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F),
    "M": (0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11),
    "N": (0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11),
    "O": (0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E),
    "P": (0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10),
    "Q": (0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D),
    "R": (0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11),
    "S": (0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E),
    "T": (0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04),
    "U": (0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E),
    "V": (0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04),
    "W": (0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A),
    "X": (0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11),
    "Y": (0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04),
    "Z": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F),
    "0": (0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E),
    "1": (0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E),
    "2": (0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F),
    "3": (0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E),
    "4": (0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02),
    "5": (0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E),
    "6": (0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E),
    "7": (0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08),
    "8": (0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E),
    "9": (0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C),
    " ": (0, 0, 0, 0, 0, 0, 0),
    ".": (0, 0, 0, 0, 0, 0x0C, 0x0C),
    ",": (0, 0, 0, 0, 0x0C, 0x04, 0x08),
    "-": (0, 0, 0, 0x1F, 0, 0, 0),
    "=": (0, 0, 0x1F, 0, 0x1F, 0, 0),
    "/": (0, 0x01, 0x02, 0x04, 0x08, 0x10, 0),
    "(": (0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02),
    ")": (0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08),
    ":": (0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0),
    "%": (0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03),
    "+": (0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0),
    "<": (0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02),
    ">": (0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08),
    "_": (0, 0, 0, 0, 0, 0, 0x1F),
}


class Canvas:
    """An RGB raster with the few drawing operations a line chart needs."""

    def __init__(self, width: int, height: int, background: RGB = WHITE) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def set(self, x: int, y: int, color: RGB) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            i = 3 * (y * self.width + x)
            self.pixels[i : i + 3] = bytes(color)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: RGB) -> None:
        """Fill the rectangle with corners (x0, y0) and (x1, y1), inclusive."""
        for y in range(max(0, min(y0, y1)), min(self.height, max(y0, y1) + 1)):
            for x in range(max(0, min(x0, x1)), min(self.width, max(x0, x1) + 1)):
                self.set(x, y, color)

    def line(
        self, x0: float, y0: float, x1: float, y1: float, color: RGB, width: int = 1, dash: int = 0
    ) -> None:
        """A straight line (dashed with `dash` pixels on, `dash` off), `width` pixels thick."""
        steps = max(1, int(max(abs(x1 - x0), abs(y1 - y0))))
        half = width // 2
        for i in range(steps + 1):
            if dash and (i // dash) % 2:
                continue
            x = round(x0 + (x1 - x0) * i / steps)
            y = round(y0 + (y1 - y0) * i / steps)
            self.rect(x - half, y - half, x - half + width - 1, y - half + width - 1, color)

    def text(self, x: int, y: int, s: str, color: RGB = BLACK, scale: int = 2) -> int:
        """Draw s with its top-left at (x, y); returns the x after the last glyph."""
        for ch in s.upper():
            rows = _FONT.get(ch, _FONT[" "])
            for r, bits in enumerate(rows):
                for c in range(5):
                    if bits >> (4 - c) & 1:
                        self.rect(
                            x + c * scale,
                            y + r * scale,
                            x + (c + 1) * scale - 1,
                            y + (r + 1) * scale - 1,
                            color,
                        )
            x += 6 * scale
        return x

    def png(self) -> bytes:
        """The canvas as a PNG file (8-bit RGB, no filtering, zlib level 9)."""
        stride = 3 * self.width
        raw = b"".join(
            b"\x00" + bytes(self.pixels[y * stride : (y + 1) * stride]) for y in range(self.height)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            return (
                struct.pack(">I", len(data))
                + kind
                + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
            )

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b"")
        )


def text_width(s: str, scale: int = 2) -> int:
    return 6 * scale * len(s)


@dataclass(frozen=True)
class Series:
    label: str
    points: list[tuple[float, float]]
    color: RGB
    dash: int = 0
    noisy: frozenset[float] = frozenset()
    """x values measured while other processes used NOISY_CORES or more: hollow markers."""


def _ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks per decade between lo and hi (log axes)."""
    out = []
    for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for f in (1, 2, 5):
            v = f * 10.0**e
            if lo * 0.999 <= v <= hi * 1.001:
                out.append(v)
    return out


def _short(v: float) -> str:
    """10000 -> 10K, 1000000 -> 1M, 0.5 -> 0.5."""
    for div, suffix in ((1e6, "M"), (1e3, "K")):
        if v >= div:
            q = v / div
            return f"{q:g}{suffix}"
    return f"{v:g}"


def plot_panel(
    canvas: Canvas,
    box: tuple[int, int, int, int],
    title: str,
    xlabel: str,
    ylabel: str,
    series: Sequence[Series],
    xticks: Sequence[float],
) -> None:
    """One log-log panel in box (left, top, right, bottom), with legend and ticks."""
    left, top, right, bottom = box
    px0, py0, px1, py1 = left + 70, top + 40, right - 10, bottom - 50
    xs = [x for s in series for x, _ in s.points] or [1.0, 10.0]
    ys = [y for s in series for _, y in s.points if y > 0] or [1.0, 10.0]
    xlo, xhi = min(min(xs), *xticks) / 1.15, max(max(xs), *xticks) * 1.15
    ylo = 10 ** math.floor(math.log10(min(ys)))
    yhi = 10 ** math.ceil(math.log10(max(ys)))

    def fx(x: float) -> float:
        return px0 + (math.log10(x) - math.log10(xlo)) / math.log10(xhi / xlo) * (px1 - px0)

    def fy(y: float) -> float:
        return py1 - (math.log10(y) - math.log10(ylo)) / math.log10(yhi / ylo) * (py1 - py0)

    canvas.text(left + (right - left - text_width(title)) // 2, top + 8, title)
    for v in _ticks(ylo, yhi):
        y = round(fy(v))
        canvas.line(px0, y, px1, y, GRID)
        label = _short(v)
        canvas.text(px0 - 8 - text_width(label), y - 7, label, AXIS)
    for v in xticks:
        x = round(fx(v))
        canvas.line(x, py0, x, py1, GRID)
        label = _short(v)
        canvas.text(x - text_width(label) // 2, py1 + 8, label, AXIS)
    canvas.line(px0, py0, px0, py1, AXIS, 2)
    canvas.line(px0, py1, px1, py1, AXIS, 2)
    canvas.text(px0 + (px1 - px0 - text_width(xlabel)) // 2, py1 + 30, xlabel)
    canvas.text(left + 4, top + 16, ylabel, AXIS, scale=1)
    for s in series:
        pts = sorted(s.points)
        for (xa, ya), (xb, yb) in itertools.pairwise(pts):
            canvas.line(fx(xa), fy(ya), fx(xb), fy(yb), s.color, 3, s.dash)
        for px, py in pts:
            cx, cy = round(fx(px)), round(fy(py))
            canvas.rect(cx - 5, cy - 5, cx + 5, cy + 5, s.color)
            if px in s.noisy:
                canvas.rect(cx - 3, cy - 3, cx + 3, cy + 3, WHITE)
    ly = py0 + 6
    for s in series:
        canvas.line(px0 + 12, ly + 7, px0 + 40, ly + 7, s.color, 3, s.dash)
        canvas.text(px0 + 48, ly, s.label)
        ly += 22


def chart(doc: dict[str, Any]) -> bytes:
    """The sweep as a two-panel PNG: seconds vs m (n fixed) and seconds vs n (m fixed)."""
    points = doc["points"]
    mser = [
        p for p in points if p["series"] in ("m", "grid") and p["n"] == doc["parameters"]["n_fixed"]
    ]
    nser = [
        p for p in points if p["series"] in ("n", "grid") and p["m"] == doc["parameters"]["m_fixed"]
    ]
    # A point run once for both series (n_fixed, m_fixed) belongs in both panels.
    for p in points:
        if p["n"] == doc["parameters"]["n_fixed"] and p["m"] == doc["parameters"]["m_fixed"]:
            if p not in mser:
                mser.append(p)
            if p not in nser:
                nser.append(p)
    canvas = Canvas(1400, 650)
    canvas.text(
        20,
        628,
        f"hollow marker: other processes used {NOISY_CORES} cores or more during that run "
        "(noise: slower than alone)",
        AXIS,
    )
    mach = doc["machine"]
    canvas.text(
        20,
        12,
        f"Kruispunt round, separate processes, mTLS on loopback -- {mach['nproc']} cores, "
        f"{mach['date']}",
    )
    left = [
        Series(
            "kruispunt round",
            [(p["m"], p["seconds"]) for p in mser],
            BLUE,
            noisy=frozenset(p["m"] for p in mser if p.get("others_during", 0) >= NOISY_CORES),
        ),
        Series("ideal (cost model)", [(p["m"], p["ideal_seconds"]) for p in mser], GREY, dash=6),
    ]
    om = [p for p in mser if p.get("openmined")]
    if om:
        left.append(
            Series(
                "openmined-psi, 1 thread",
                [(p["m"], p["openmined"]["seconds"]) for p in om],
                ORANGE,
                noisy=frozenset(
                    p["m"] for p in om if p["openmined"].get("others_during", 0) >= NOISY_CORES
                ),
            )
        )
    plot_panel(
        canvas,
        (0, 40, 700, 620),
        f"{doc['parameters']['n_fixed']} partners: seconds vs records per partner",
        "records per partner",
        "seconds",
        left,
        sorted({float(p["m"]) for p in mser}) or [1e4, 1e5],
    )
    right = [
        Series(
            "kruispunt round",
            [(p["n"], p["seconds"]) for p in nser],
            BLUE,
            noisy=frozenset(p["n"] for p in nser if p.get("others_during", 0) >= NOISY_CORES),
        ),
        Series("ideal (cost model)", [(p["n"], p["ideal_seconds"]) for p in nser], GREY, dash=6),
    ]
    plot_panel(
        canvas,
        (700, 40, 1400, 620),
        f"{_short(doc['parameters']['m_fixed'])} records each: seconds vs partners",
        "partners",
        "seconds",
        right,
        sorted({float(p["n"]) for p in nser}) or [2.0, 10.0],
    )
    return canvas.png()


# -- command line -------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    out = []
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        mult = 1
        if item.endswith("k"):
            item, mult = item[:-1], 1000
        elif item.endswith("m"):
            item, mult = item[:-1], 1_000_000
        out.append(int(float(item) * mult))
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive numbers (10k, 1m)")
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="sweep.py", description="How a real Kruispunt round scales with m and n."
    )
    ap.add_argument(
        "--m",
        type=_int_list,
        default=list(DEFAULT_M),
        metavar="LIST",
        help="records per partner (default 10k,30k,100k,300k,1m)",
    )
    ap.add_argument(
        "--n",
        type=_int_list,
        default=list(DEFAULT_N),
        metavar="LIST",
        help="partners (default 2,3,5,10,20,34)",
    )
    ap.add_argument(
        "--grid",
        choices=("axes", "cross"),
        default="axes",
        help="axes: m-series at --n-fixed and n-series at --m-fixed (default); cross: every (n, m)",
    )
    ap.add_argument("--n-fixed", type=int, default=2, help="partners of the m-series (default 2)")
    ap.add_argument(
        "--m-fixed", type=_int_list, default=[10_000], help="records of the n-series (default 10k)"
    )
    ap.add_argument(
        "--quick", action="store_true", help="short run: m 1k,3k,10k and n 2,3,5 at m 1k"
    )
    ap.add_argument("--overlap", type=float, default=0.1, help="(default 0.1)")
    ap.add_argument("--threshold", type=int, default=2, help="(default 2)")
    ap.add_argument("--workers", default="auto", help="pool threads per node (default auto)")
    ap.add_argument("--kind", choices=("address", "bsn"), default="address")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument(
        "--openmined",
        default="gcs-reveal",
        choices=(*rb.OPENMINED_SETUPS, ""),
        help="openmined-psi setup timed next to the m-series ('' for none; default gcs-reveal)",
    )
    ap.add_argument(
        "--max-predicted",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="skip points predicted to take longer (default 3600)",
    )
    ap.add_argument(
        "--wait-quiet",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="wait up to this long for a quiet machine before each round "
        "(default 300; 0: do not wait)",
    )
    ap.add_argument("--check", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument(
        "--json",
        type=Path,
        default=Path("docs/perf/sweep.json"),
        metavar="OUT",
        help="results (default docs/perf/sweep.json)",
    )
    ap.add_argument(
        "--png",
        type=Path,
        default=Path("docs/perf/sweep.png"),
        metavar="OUT",
        help="chart (default docs/perf/sweep.png)",
    )
    ap.add_argument(
        "--calibration-from",
        type=Path,
        action="append",
        default=[],
        metavar="JSON",
        help="also take the per-operation costs of an earlier run's JSON where cheaper "
        "(repeatable; with --from-json the efficiencies are recomputed and --json written)",
    )
    ap.add_argument(
        "--merge",
        type=Path,
        metavar="IN",
        help="start from an earlier sweep's JSON: points measured now replace its points "
        "with the same n and m (e.g. to rerun one that failed)",
    )
    ap.add_argument(
        "--from-json",
        type=Path,
        metavar="IN",
        help="do not measure: print the table and draw the chart of an earlier run",
    )
    args = ap.parse_args(argv)
    args.m_fixed = args.m_fixed[0]
    if args.quick:
        args.m, args.n, args.m_fixed = list(QUICK_M), list(QUICK_N), QUICK_M[0]
        if args.json == Path("docs/perf/sweep.json"):
            args.json = Path("docs/perf/sweep-quick.json")
        if args.png == Path("docs/perf/sweep.png"):
            args.png = Path("docs/perf/sweep-quick.png")
    if min(args.n) < 2 or args.n_fixed < 2:
        ap.error("every n must be at least 2")
    if not 0 <= args.overlap < 1:
        ap.error("--overlap must be in [0, 1)")
    if args.threshold < 2:
        ap.error("--threshold must be at least 2")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        doc = json.loads(args.from_json.read_text(encoding="utf-8"))
        if args.calibration_from:
            cal = rb.Calibration(**doc["calibration"])
            for other in rb.load_calibrations(args.calibration_from):
                cal = rb.merge_calibrations(cal, other)
            doc["calibration_sources"] = [
                *doc.get("calibration_sources", ["this run"]),
                *map(str, args.calibration_from),
            ]
            recompute(doc, cal)
            write_json(args.json, doc)
            rb.progress(f"wrote {args.json}")
    else:
        doc = run_sweep(args)
        write_json(args.json, doc)
        rb.progress(f"wrote {args.json}")
    print(render(doc), flush=True)
    if args.png:
        args.png.parent.mkdir(parents=True, exist_ok=True)
        args.png.write_bytes(chart(doc))
        rb.progress(f"wrote {args.png}")
    return 1 if any(p["correct"] is False for p in doc["points"]) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
