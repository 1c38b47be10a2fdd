"""What the native core answers on this CPU, as one JSON line (run under qemu-user).

`tests/process/test_older_cpus.py` runs this under an emulated CPU without AVX-512, or
without AVX2 as well, and checks the answers against the host's; nothing here is secret
(fixed scalars, synthetic inputs).
"""

from __future__ import annotations

import hashlib
import json

from psi_node import oprf

#: Fixed scalars below the group order (top byte zero): the same answers on every CPU.
KEY = bytes(range(1, 32)) + b"\x00"
BLIND = bytes(range(32, 63)) + b"\x00"
INPUTS = [b"probe-%06d" % i for i in range(1500)]
CHUNK = 500


def answers() -> dict[str, object]:
    """Hash-to-group, blinding, evaluation with its DLEQ proofs, on both threads."""
    oprf.set_workers(2, 128)
    blinded = oprf.hash_and_mult(INPUTS, BLIND)
    key = oprf.RoundKey(KEY, BLIND)
    evaluated, proofs = oprf.evaluate_and_prove(key, blinded, CHUNK)
    return {
        "backend": oprf.backend(),
        "hashed": hashlib.sha256(oprf.hash_to_group(INPUTS)).hexdigest(),
        "blinded": blinded.hex(),
        "evaluated": evaluated.hex(),
        "proofs": [p.hex() for p in proofs],
        "public": key.public_key.hex(),
        "tags": hashlib.sha256(
            oprf.finalize(INPUTS, oprf.scalar_mult(KEY, oprf.hash_to_group(INPUTS)))
        ).hexdigest(),
    }


if __name__ == "__main__":
    print(json.dumps(answers()))
