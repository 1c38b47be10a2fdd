"""The node's round modes, one module each, and the table that picks one by Purpose.mode.

`network` runs the multi-party matching round (blind, evaluate, finalize,
deliver); `bilateral` runs openmined-psi's two-party PSI (request, response,
setup, result). Both share `psi_node.round_state` and never import each
other; `psi_node.rounds.RoundManager` runs consent, commit and abort for
both, picks a consented round's mode from `MODES`, and offers each mode's
calls to the servicer.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from psi_node.modes import bilateral, network
from psi_node.round_state import RoundMode

__all__ = ["MODES", "bilateral", "network"]

#: Every mode this node runs, by the purpose's mode name.
MODES: Final[Mapping[str, RoundMode]] = MappingProxyType(
    {mode.name: mode for mode in (network.MODE, bilateral.MODE)}
)
