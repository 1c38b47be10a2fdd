"""Where the repository and the tests' fixed inputs are, whichever tier's folder asks."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
"""Sample partner exports and exclusion lists (CSV)."""
VECTORS = REPO / "tests" / "vectors"
"""Published test vectors (tests/vectors/README.md says where they come from)."""
