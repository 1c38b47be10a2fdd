"""`make demo`: a local Kruispunt network on loopback, built and run the way partners would.

A coordinator and six partner nodes of a Den Bosch-like social-domain network
(municipality, three housing corporations, debt counselling, an energy
company) are set up through the real CLI flow: init, CSR, partner add,
install-cert, roster export and accept at every node, purpose add. Each runs
as its own process with mutual TLS on 127.0.0.1. One round at threshold 2
runs; the demo then prints what every partner learned and where its result
file is, checks the audit log, and stops everything. All data is synthetic.
The network plumbing is `tests/support/netlab.py`, which the round benchmarks
share.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.support.netlab import LocalNetwork, NetlabError, NetworkSpec, PartnerSpec, PurposeSpec

PURPOSE = "vroegsignalering"
PARTNERS = {
    "gemeente": ("Gemeente 's-Hertogenbosch (demo)", 4000, "AVG art. 6(1)(e); Wgs art. 3a"),
    "corporatie-noord": ("Woningcorporatie Noord (demo)", 2500, "AVG art. 6(1)(c); Wgs art. 3a"),
    "corporatie-zuid": ("Woningcorporatie Zuid (demo)", 2500, "AVG art. 6(1)(c); Wgs art. 3a"),
    "corporatie-west": ("Woningcorporatie West (demo)", 2000, "AVG art. 6(1)(c); Wgs art. 3a"),
    "schuldhulp": ("Schuldhulpverlening (demo)", 1500, "AVG art. 6(1)(e); Wgs art. 3"),
    "energie": ("Energieleverancier (demo)", 3000, "AVG art. 6(1)(c); Wgs art. 3a"),
}
SPEC = NetworkSpec(
    network="denbosch",
    kind="address",
    seed=2026,
    workers=1,
    objected_every=97,  # a few people used their right to object
    # The energy company's export comes from Excel, with a byte-order mark.
    partners=tuple(
        PartnerSpec(pid, name, size, basis, bom=pid == "energie")
        for pid, (name, size, basis) in PARTNERS.items()
    ),
    overlaps={2: 240, 3: 60, 4: 15, 5: 4, ("gemeente", "schuldhulp"): 30},
    purposes=(
        PurposeSpec(
            id=PURPOSE,
            description="Vroegsignalering: huishoudens met signalen bij meerdere partners",
            threshold=2,
            disclosure="partners",
            result_retention_days=28,
            max_set_size=10000,
            covenant_id="Convenant Vroegsignalering Den Bosch 2026 (demo)",
            dpia_reference="DPIA-VS-2026-01 (demo)",
        ),
    ),
)


def say(text: str) -> None:
    print(text, flush=True)


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="kruispunt-demo-"))
    say(f"Kruispunt demo network in {root}\n")
    with LocalNetwork(root, SPEC) as net:
        say("1. Coordinator: network CA, signing key, database")
        net.init_coordinator()
        say(f"   CA key on a stand-in for offline media: {net.ca_key}")
        say("2. Partners: keys and CSR at the partner, certificate from the coordinator")
        say("   (partner add --ca-key: the CA key is asked for explicitly)")
        for partner in SPEC.partners:
            net.add_partner(partner)
            say(
                f"   {partner.id:<18} {partner.name:<36} {len(net.data.rows[partner.id]):>5} "
                f"households, port {net.ports[partner.id]}"
            )
        roster = net.publish_roster()
        say(
            f"3. Partner roster version {roster['version']}, accepted at every node by its "
            f"digest\n   {roster['digest_grouped']}"
        )
        say("4. Purpose with legal basis per partner")
        net.add_purpose(SPEC.purposes[0])
        say("5. Starting the coordinator and six nodes (separate processes, mutual TLS)")
        net.start()
        say("6. Round at threshold 2\n")
        run = net.run_round(PURPOSE, reason="make demo")
    summary = run.summary

    wall = run.wall_seconds
    say(f"Round {summary['round_id']} completed in {wall:.1f} s (wall, including the CLI)")
    say(f"{'partner':<18} {'records':>8} {'flagged':>8} {'expected':>8}  result file")
    # Ground truth: objected rows never leave their node, so they count at no partner.
    expected = net.expected_flagged(threshold=2)
    ok = True
    for pid, v in summary["partners"].items():
        ok &= v["flagged_count"] == expected[pid]
        say(
            f"{pid:<18} {v['set_size']:>8} {v['flagged_count']:>8} {expected[pid]:>8}  "
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
    say("\n7. Audit log")
    say("   " + net.cli("psi-coordinator", "audit", "verify", str(net.coordinator_dir)).strip())
    say(f"\nEverything is in {root} (remove it with: rm -r {root})")
    if not ok:
        say("demo: flagged counts differ from the planted overlaps!")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except NetlabError as exc:
        sys.exit(f"demo: {exc}")
    except KeyboardInterrupt:
        sys.exit(130)
