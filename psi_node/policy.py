"""The node's own decision on a manifest: does this organisation take part, and on what terms."""

from __future__ import annotations

from kruispunt.manifest import VerifiedManifest
from psi_node.config import DISCLOSURE_RANK, NodeConfig


def refusal_reason(config: NodeConfig, verified: VerifiedManifest) -> str | None:
    """Why this node must refuse the manifest, or None when its policy allows it."""
    purpose = verified.purpose
    me = config.partner_id
    if me not in verified.partners:
        return "this node is not in the manifest's partner list"
    policy = config.policies.get(purpose.id)
    if policy is None:
        return f"purpose {purpose.id!r} is not agreed by this organisation"
    if purpose.id not in config.inputs:
        return f"no input is configured for purpose {purpose.id!r}"
    if purpose.mode != policy.mode:
        return f"purpose runs in {purpose.mode!r} mode; this node agreed to {policy.mode!r} only"
    if purpose.bilateral is not None:
        role = "client" if purpose.bilateral.client_partner == me else "server"
        if role != policy.bilateral_role:
            return (
                f"this node would be the bilateral {role}; "
                f"it agreed to be the {policy.bilateral_role}"
            )
    basis = purpose.legal_basis.get(me, "")
    if basis.strip() != policy.legal_basis.strip():
        return (
            f"legal basis in the manifest ({basis!r}) differs from this organisation's "
            f"({policy.legal_basis!r})"
        )
    strangers = sorted(set(verified.partners) - policy.partners - {me})
    if strangers:
        return f"partner(s) not agreed for this purpose: {', '.join(strangers)}"
    if purpose.mode == "network" and purpose.threshold < policy.min_threshold:
        return f"threshold {purpose.threshold} is below this node's minimum {policy.min_threshold}"
    if DISCLOSURE_RANK[purpose.disclosure] > DISCLOSURE_RANK[policy.max_disclosure]:
        return (
            f"disclosure {purpose.disclosure!r} exceeds what this node allows "
            f"({policy.max_disclosure!r})"
        )
    if config.inputs[purpose.id].kind != purpose.identifier_kind:
        return (
            f"purpose matches on {purpose.identifier_kind!r} but this node's input holds "
            f"{config.inputs[purpose.id].kind!r}"
        )
    if policy.max_set_size is not None and purpose.max_set_size > policy.max_set_size:
        return (
            f"purpose allows sets of {purpose.max_set_size}, more than this node's "
            f"limit {policy.max_set_size}"
        )
    return None
