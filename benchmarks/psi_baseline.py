"""openmined-psi alone, in this process: the comparison point of the round benchmarks.

No node, no coordinator, no network: both parties' objects in one process,
so what is timed is the library's own work. `openmined_psi` times one full
exchange in a named setup (`benchmarks/round_bench.py`, `sweep.py`);
`intersection_size` is the fastest form, called on the native objects
directly. The rate is coarsened where the library's GCS hash range would
overflow, by the same limit the two-party mode checks (`kruispunt.psi_limits`).

Not part of the shipped packages: only the benchmarks and their tests use it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

from kruispunt.psi_limits import gcs_fits

#: The setups `openmined_psi` times: server data structure, and what the client learns.
OPENMINED_SETUPS: Final = ("gcs-size", "gcs-reveal", "raw-size", "raw-reveal")
#: The false-positive rate the baseline asks for, where the GCS hash range allows it.
OPENMINED_FPR: Final = 1e-9


def openmined_fpr(client_size: int, server_size: int) -> float:
    """OPENMINED_FPR, or the smallest power of ten above it at which a GCS setup fits.

    At 1e-9 two sets of 100,000 already overflow openmined-psi's GCS range (the
    two-party mode refuses them); a coarser rate changes only the filter size.
    """
    fpr = OPENMINED_FPR
    while not gcs_fits(max(client_size, 1), server_size, fpr):
        fpr *= 10
    return fpr


@dataclass
class OpenminedRun:
    """One in-process two-party PSI with openmined-psi (client and server in this process)."""

    setup: str
    seconds: float
    cpu_seconds: float
    phases: dict[str, float]
    result: int
    """Intersection size found."""
    others_during: float = 0.0
    """Cores other processes used during the run."""


def _structure(name: str) -> Any:
    import private_set_intersection.python as psi  # imported here: only the baseline needs it

    return psi.DataStructure.GCS if name == "gcs" else psi.DataStructure.RAW


def openmined_psi(client_set: list[str], server_set: list[str], setup: str) -> OpenminedRun:
    """Time a full openmined-psi exchange: setup, request, response, intersection."""
    import private_set_intersection.python as psi

    structure, mode = setup.split("-")
    ds = _structure(structure)
    reveal = mode == "reveal"
    c0, t0 = time.process_time(), time.perf_counter()
    client = psi.client.CreateWithNewKey(reveal)
    server = psi.server.CreateWithNewKey(reveal)
    fpr = openmined_fpr(len(client_set), len(server_set))
    setup_msg = server.CreateSetupMessage(fpr, len(client_set), server_set, ds)
    t1 = time.perf_counter()
    request = client.CreateRequest(client_set)
    t2 = time.perf_counter()
    response = server.ProcessRequest(request)
    t3 = time.perf_counter()
    if reveal:
        found = len(client.GetIntersection(setup_msg, response))
    else:
        found = int(client.GetIntersectionSize(setup_msg, response))
    t4 = time.perf_counter()
    return OpenminedRun(
        setup=setup,
        seconds=t4 - t0,
        cpu_seconds=time.process_time() - c0,
        phases={
            "server_setup": t1 - t0,
            "client_request": t2 - t1,
            "server_response": t3 - t2,
            "client_intersection": t4 - t3,
        },
        result=found,
    )


def intersection_size(
    client_items: list[bytes], server_items: list[bytes], fpr: float, data_structure: str
) -> int:
    """The intersection size by openmined-psi alone, in one process: the comparison point.

    Its fastest setup: both parties in this process, the native objects called
    directly (no protobuf round trips), size only (no index bookkeeping).
    """
    import private_set_intersection.python as psi

    native: Any = psi.psi  # the compiled module behind the public wrapper
    client = native.cpp_client.CreateWithNewKey(False)
    server = native.cpp_server.CreateWithNewKey(False)
    setup_message = server.CreateSetupMessage(
        fpr, len(client_items), server_items, _structure(data_structure).value
    )
    answer = server.ProcessRequest(client.CreateRequest(client_items))
    return int(client.GetIntersectionSize(setup_message, answer))
