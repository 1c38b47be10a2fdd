"""`make demo`: a local Kruispunt network on loopback, built and run the way partners would.

A coordinator and six partner nodes of a Den Bosch-like social-domain network
(municipality, three housing corporations, debt counselling, an energy
company) are set up through the real CLI flow: init, CSR, partner add,
install-cert, purpose add. Each runs as its own process with mutual TLS on
127.0.0.1. One round at threshold 2 runs; the demo then prints what every
partner learned and where its result file is, checks the audit log, and stops
everything. All data is synthetic.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kruispunt.synthetic import make_network, write_csv  # noqa: E402

BIN = Path(sys.executable).parent
NETWORK = "denbosch"
PURPOSE = "vroegsignalering"
PARTNERS = {
    "gemeente": ("Gemeente 's-Hertogenbosch (demo)", 4000, "AVG art. 6(1)(e); Wgs art. 3a"),
    "corporatie-noord": ("Woningcorporatie Noord (demo)", 2500, "AVG art. 6(1)(c); Wgs art. 3a"),
    "corporatie-zuid": ("Woningcorporatie Zuid (demo)", 2500, "AVG art. 6(1)(c); Wgs art. 3a"),
    "corporatie-west": ("Woningcorporatie West (demo)", 2000, "AVG art. 6(1)(c); Wgs art. 3a"),
    "schuldhulp": ("Schuldhulpverlening (demo)", 1500, "AVG art. 6(1)(e); Wgs art. 3"),
    "energie": ("Energieleverancier (demo)", 3000, "AVG art. 6(1)(c); Wgs art. 3a"),
}
OVERLAPS = {2: 240, 3: 60, 4: 15, 5: 4, ("gemeente", "schuldhulp"): 30}


def say(text: str) -> None:
    print(text, flush=True)


def run(*args: str, quiet: bool = True) -> str:
    """Run one of our CLIs; stop the demo with its message if it fails."""
    proc = subprocess.run(
        [str(BIN / args[0]), *args[1:]], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        sys.exit(f"demo: `{' '.join(args)}` failed:\n{proc.stderr or proc.stdout}")
    if not quiet:
        print(proc.stdout, end="")
    return proc.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"demo: {name} exited early; its log ({log}):\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit(f"demo: {name} did not start listening on port {port}")


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="kruispunt-demo-"))
    coord = root / "coordinator"
    say(f"Kruispunt demo network in {root}\n")
    say("1. Coordinator: network CA, signing key, database")
    admin_port = free_port()
    run("psi-coordinator", "init", str(coord), "--network", NETWORK, "--port", str(admin_port))

    data = make_network(
        list(PARTNERS), {p: v[1] for p, v in PARTNERS.items()}, OVERLAPS, seed=2026, kind="address"
    )
    say("2. Partners: keys and CSR at the partner, certificate from the coordinator")
    ports = {}
    for pid, (name, _size, basis) in PARTNERS.items():
        node = root / "nodes" / pid
        ports[pid] = free_port()
        run(
            "psi-node",
            "init",
            str(node),
            "--partner",
            pid,
            "--name",
            name,
            "--port",
            str(ports[pid]),
        )
        run(
            "psi-coordinator",
            "partner",
            "add",
            str(coord),
            pid,
            "--name",
            name,
            "--address",
            f"127.0.0.1:{ports[pid]}",
            "--csr",
            str(node / "tls/node.csr"),
            "--signing-key",
            str(node / "signing/node.pub"),
        )
        run(
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
        export = node / "export" / "signalen.csv"
        export.parent.mkdir()
        objected = range(0, len(data.rows[pid]), 97)  # a few people used their right to object
        write_csv(
            export,
            data.rows[pid],
            "address",
            objection_column="bezwaar",
            objected=objected,
            bom=pid == "energie",
            delimiter=";",
        )
        others = ", ".join(f'"{p}"' for p in PARTNERS if p != pid)
        with open(node / "node.toml", "a", encoding="utf-8") as fh:
            fh.write(
                f'\n[inputs.{PURPOSE}]\npath = "export/signalen.csv"\nkind = "address"\n'
                f'objection_column = "bezwaar"\n\n'
                f'[policy.{PURPOSE}]\nlegal_basis = "{basis}"\npartners = [{others}]\n'
                f'min_threshold = 2\nmax_disclosure = "partners"\n'
            )
        say(f"   {pid:<18} {name:<36} {len(data.rows[pid]):>5} households, port {ports[pid]}")
        text = (
            (node / "node.toml").read_text().replace('listen = "0.0.0.0:', 'listen = "127.0.0.1:')
        )
        (node / "node.toml").write_text(text.replace("# workers = 2 ", "workers = 1 ", 1))

    say("3. Purpose with legal basis per partner")
    purpose = root / "purpose.toml"
    legal = "\n".join(f'{p} = "{v[2]}"' for p, v in PARTNERS.items())
    purpose.write_text(
        f'id = "{PURPOSE}"\n'
        'description = "Vroegsignalering: huishoudens met signalen bij meerdere partners"\n'
        'identifier_kind = "address"\nthreshold = 2\ndisclosure = "partners"\n'
        "result_retention_days = 28\nmax_set_size = 10000\n"
        'covenant_id = "Convenant Vroegsignalering Den Bosch 2026 (demo)"\n'
        'dpia_reference = "DPIA-VS-2026-01 (demo)"\n'
        f"[legal_basis]\n{legal}\n",
        encoding="utf-8",
    )
    run("psi-coordinator", "purpose", "add", str(coord), str(purpose))

    say("4. Starting the coordinator and six nodes (separate processes, mutual TLS)")
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    env = {**os.environ, "KRUISPUNT_LOG_LEVEL": "info"}
    try:
        for pid in PARTNERS:
            log = root / "nodes" / pid / "node.log"
            p = subprocess.Popen(
                [str(BIN / "psi-node"), "serve", str(root / "nodes" / pid)],
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                env=env,
            )
            procs.append((pid, p))
            wait_for_port(ports[pid], p, pid, log)
        log = coord / "coordinator.log"
        p = subprocess.Popen(
            [str(BIN / "psi-coordinator"), "serve", str(coord)],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        procs.append(("coordinator", p))
        wait_for_port(admin_port, p, "coordinator", log)

        say("5. Round at threshold 2\n")
        started = time.monotonic()
        proc = subprocess.run(
            [
                str(BIN / "psi-coordinator"),
                "round",
                "run",
                str(coord),
                PURPOSE,
                "--json",
                "--reason",
                "make demo",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.monotonic() - started
        if proc.returncode != 0:
            sys.exit(f"demo: the round failed:\n{proc.stderr}{proc.stdout}")
        summary = json.loads(proc.stdout)
    finally:
        for _name, p in procs:
            p.send_signal(signal.SIGTERM)
        for _name, p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()

    say(f"Round {summary['round_id']} completed in {wall:.1f} s (wall, including the CLI)")
    say(f"{'partner':<18} {'records':>8} {'flagged':>8} {'expected':>8}  result file")
    # Ground truth: objected rows never leave their node, so they count at no partner.
    kept = {p: {cid for i, cid in enumerate(data.ids[p]) if i % 97} for p in PARTNERS}
    holders: dict[bytes, int] = {}
    for ids in kept.values():
        for cid in ids:
            holders[cid] = holders.get(cid, 0) + 1
    ok = True
    for pid, v in summary["partners"].items():
        expected = sum(1 for cid in kept[pid] if holders[cid] >= 2)
        ok &= v["flagged_count"] == expected
        say(
            f"{pid:<18} {v['set_size']:>8} {v['flagged_count']:>8} {expected:>8}  "
            f"{v['result_path']}"
        )
    hist = ", ".join(f"{k}: {n}" for k, n in summary["histogram"].items() if n)
    say("\nHouseholds by number of partners holding them (what the coordinator learned):")
    say(f"   {hist}")
    say("Phases: " + ", ".join(f"{k} {s:.2f}s" for k, s in summary["phases"].items()))
    sample = Path(summary["partners"]["schuldhulp"]["result_path"])
    lines = sample.read_text(encoding="utf-8").splitlines()
    say(f"\nFirst lines of {sample} (what schuldhulp learned):")
    for line in lines[:4]:
        say(f"   {line}")
    say("\n6. Audit log")
    say("   " + run("psi-coordinator", "audit", "verify", str(coord)).strip())
    say(f"\nEverything is in {root} (remove it with: rm -r {root})")
    if not ok:
        say("demo: flagged counts differ from the planted overlaps!")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
