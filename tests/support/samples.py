"""`psi-node check-input` arguments that read the sample exports in tests/data."""

from __future__ import annotations

from tests.support.paths import DATA

BSN_ARGS = [
    str(DATA / "partner_bsn.csv"), "--kind", "bsn", "--objection-column", "Bezwaar",
    "--exclusions", str(DATA / "exclusions_bsn.csv"),
]  # fmt: skip
ADDRESS_ARGS = [
    str(DATA / "partner_address.csv"), "--kind", "address", "--objection-column", "Bezwaar",
    "--exclusions", str(DATA / "exclusions_address.csv"),
]  # fmt: skip
