"""A whole multi-party matching round in one process, without network or servers.

It runs exactly the cryptography of DESIGN.md, "The matching round": a fresh
key per party, blinding, the step schedule (at step s node j evaluates the set
of node (j + s) mod n), unblinding, Finalize and the coordinator's tally. The
tests use it as the reference the gRPC round must agree with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from coordinator.tally import TallyResult, tally
from psi_node import oprf


@dataclass(frozen=True)
class SimulationResult:
    """What one simulated round produced.

    `schedule` lists `(step, node, origin)` for every evaluation in the order
    it ran; `tags[p]` are p's packed 16-byte tags in p's record order.
    """

    partners: tuple[str, ...]
    tally: TallyResult
    tags: Mapping[str, bytes]
    schedule: tuple[tuple[int, str, str], ...]

    @property
    def flagged(self) -> Mapping[str, list[int]]:
        """Per partner, the indices of its flagged records."""
        return self.tally.flagged


def step_schedule(partners: Sequence[str]) -> list[list[tuple[str, str]]]:
    """Return, per step s = 1..n-1, the `(node, origin)` pairs: node j works on node (j+s) mod n."""
    n = len(partners)
    return [[(partners[j], partners[(j + s) % n]) for j in range(n)] for s in range(1, n)]


def simulate_round(
    sets: Mapping[str, Sequence[bytes]],
    threshold: int,
    *,
    keys: Mapping[str, oprf.RoundKey] | None = None,
    evaluation_keys: Mapping[str, oprf.RoundKey] | None = None,
) -> SimulationResult:
    """Run one round over `sets` (partner -> canonical identifiers, in record order).

    Every party draws a fresh RoundKey unless `keys` gives them (those are
    not wiped here). `evaluation_keys` overrides the key a node applies to
    other partners' sets, to model a node that evaluates with the wrong key.
    """
    partners = tuple(sets)
    fresh = {p: oprf.RoundKey.generate() for p in partners if keys is None or p not in keys}
    round_keys = {**fresh, **(keys or {})}
    applying = {p: (evaluation_keys or {}).get(p, round_keys[p]) for p in partners}
    try:
        # Step 1: every node blinds its own set, B = r_i * H(x).
        points: dict[str, bytes] = {}
        for p in partners:
            points[p] = oprf.blind_inputs(sets[p], round_keys[p])

        # Step 2: route every set through every other node, B <- k_j * B.
        schedule: list[tuple[int, str, str]] = []
        for step, pairs in enumerate(step_schedule(partners), start=1):
            for node, origin in pairs:
                key = applying[node]
                points[origin] = oprf.evaluate(key, points[origin])
                schedule.append((step, node, origin))

        # Step 3: back home, T = (k_i * r_i^-1) * B = K * P, tag = Finalize(x, T)[:16].
        tags: dict[str, bytes] = {}
        for p in partners:
            tags[p] = oprf.unblind_and_tag(sets[p], round_keys[p], points[p])
    finally:
        for key in fresh.values():
            key.wipe()

    # Step 4: the coordinator's tally.
    return SimulationResult(
        partners=partners,
        tally=tally(tags, partners, threshold),
        tags=tags,
        schedule=tuple(schedule),
    )
