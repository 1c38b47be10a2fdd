"""The set-up text tests, benchmarks and the demo write: node.toml policy and purpose files.

Both network harnesses (in-process `network.py`, processes `netlab.py`) start
from the node.toml `psi-node init` writes and append what a partner's operator
would add by hand: where a purpose's export is and what the node agreed to; the
process harness also registers purposes from a file, as an operator runs
`psi-coordinator purpose add`. This module is the one place that text is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

PolicyValue = str | int | float | bool

LEGAL_BASIS = "AVG art. 6(1)(e); Wgs art. 3a"
"""The legal basis every synthetic partner states unless a test says otherwise."""


def toml_value(value: PolicyValue | Sequence[str]) -> str:
    """A TOML literal: basic strings (JSON's escaping is TOML's), booleans, numbers, arrays."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    return "[" + ", ".join(json.dumps(v) for v in value) + "]"


def policy_block(
    purpose_id: str,
    *,
    input_path: Path | str,
    kind: str,
    partners: Sequence[str],
    legal_basis: str,
    max_disclosure: str = "partners",
    max_set_size: int = 1_000_000,
    min_round_interval_hours: float = 0,
    **policy: PolicyValue,
) -> str:
    """[inputs.ID] and [policy.ID] for one purpose: its export, and the terms the node agreed to.

    `partners` are the partners the node agrees to match with; `policy` adds
    further keys of the policy table (min_threshold, mode, bilateral_role, ...).
    Tests run rounds back to back, so the interval between rounds defaults to 0 here;
    the node's own default (a day) is tested on its own.
    """
    lines = [
        f"[inputs.{purpose_id}]",
        f"path = {toml_value(str(input_path))}",
        f"kind = {toml_value(kind)}",
        'objection_column = "bezwaar"',
        "",
        f"[policy.{purpose_id}]",
        f"legal_basis = {toml_value(legal_basis)}",
        f"partners = {toml_value(partners)}",
        f"max_disclosure = {toml_value(max_disclosure)}",
        f"max_set_size = {toml_value(max_set_size)}",
        f"min_round_interval_hours = {toml_value(min_round_interval_hours)}",
    ]
    lines += [f"{key} = {toml_value(value)}" for key, value in policy.items()]
    return "\n" + "\n".join(lines) + "\n"


def append_policies(
    config: Path, blocks: Sequence[str], *, workers: int | None = None, loopback: bool = False
) -> None:
    """Append policy blocks to a node.toml `psi-node init` wrote, and set what tests need.

    `workers` uncomments init's `# workers = 2` line with that thread count;
    `loopback` makes the node listen on 127.0.0.1 instead of every interface.
    """
    text = config.read_text(encoding="utf-8") + "".join(blocks)
    if loopback:
        text = text.replace('listen = "0.0.0.0:', 'listen = "127.0.0.1:')
    if workers is not None:
        text = text.replace("# workers = 2 ", f"workers = {workers} ", 1)
    config.write_text(text, encoding="utf-8")


def purpose_toml(fields: Mapping[str, PolicyValue | Mapping[str, PolicyValue]]) -> str:
    """A purpose file for `psi-coordinator purpose add`: the keys of `Purpose.from_dict`.

    Mapping values (legal_basis per partner, the bilateral settings) become tables.
    """
    scalars = [
        f"{key} = {toml_value(v)}" for key, v in fields.items() if not isinstance(v, Mapping)
    ]
    tables = [
        f"[{key}]\n" + "".join(f"{k} = {toml_value(x)}\n" for k, x in v.items())
        for key, v in fields.items()
        if isinstance(v, Mapping)
    ]
    return "\n".join(scalars) + "\n" + "".join(tables)
