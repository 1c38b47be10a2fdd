"""Purposes (doelbinding): what a round may be used for, under which legal bases.

A purpose is registered at the coordinator from a TOML file, validated, and
copied in full into every signed round manifest, so each node decides on
exactly what it is asked to take part in.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from kruispunt import psi_limits
from kruispunt.errors import ConfigError
from kruispunt.v1 import common_pb2

# Partner and purpose ids: DNS-label-safe, starting with a letter, and never holding a run of
# 8 digits, so an id can never be mistaken for (or be) a BSN in a log or audit row.
ID_RE = re.compile(r"^(?!.*[0-9]{8})[a-z][a-z0-9-]{0,62}$")
KINDS = ("bsn", "address")
DISCLOSURES = ("count", "partners")
MODES = ("network", "bilateral")
# The holder masks sent to nodes are 64-bit: a network round has at most 64 partners.
MAX_PARTNERS = 64

Disclosure = Literal["count", "partners"]


@dataclass(frozen=True)
class Bilateral:
    """Two-party settings: who learns the answer, and how openmined-psi is set up."""

    client_partner: str
    server_partner: str
    size_only: bool = False
    false_positive_rate: float = 1e-9
    data_structure: str = "gcs"


@dataclass(frozen=True)
class Purpose:
    """One registered purpose with every field of DESIGN.md."""

    id: str
    description: str
    identifier_kind: str
    threshold: int
    disclosure: str
    result_retention_days: int
    max_set_size: int
    covenant_id: str
    dpia_reference: str
    legal_basis: Mapping[str, str]
    mode: str = "network"
    bilateral: Bilateral | None = None
    version: int = 1
    partners: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "partners", tuple(sorted(self.legal_basis)))
        problems = self.problems()
        if problems:
            raise ConfigError(f"purpose {self.id!r}: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """Every reason this purpose cannot be registered (empty when valid)."""
        out: list[str] = []
        if not ID_RE.match(self.id):
            out.append("id must be a letter, then lowercase letters, digits and dashes (max 63)")
        if not self.description.strip():
            out.append("description is required")
        if self.identifier_kind not in KINDS:
            out.append(f"identifier_kind must be one of {', '.join(KINDS)}")
        if self.disclosure not in DISCLOSURES:
            out.append(f"disclosure must be one of {', '.join(DISCLOSURES)}")
        if self.mode not in MODES:
            out.append(f"mode must be one of {', '.join(MODES)}")
        if self.result_retention_days < 1:
            out.append("result_retention_days must be at least 1")
        if self.max_set_size < 1:
            out.append("max_set_size must be at least 1")
        if not self.covenant_id.strip():
            out.append("covenant_id is required (the convenant that allows this sharing)")
        if not self.dpia_reference.strip():
            out.append("dpia_reference is required")
        for partner, basis in self.legal_basis.items():
            if not ID_RE.match(partner):
                out.append(f"legal_basis: partner id {partner!r} is not a valid partner id")
            if not basis.strip():
                out.append(f"legal_basis for {partner!r} is empty")
        n = len(self.legal_basis)
        if n < 2:
            out.append("at least two partners need a legal basis")
        if n > MAX_PARTNERS:
            out.append(f"at most {MAX_PARTNERS} partners per purpose")
        if self.mode == "network" and not 2 <= self.threshold <= max(n, 2):
            out.append(f"threshold must be between 2 and the number of partners ({n})")
        if self.mode == "bilateral":
            b = self.bilateral
            if b is None:
                out.append("mode 'bilateral' needs a [bilateral] table")
            else:
                if n != 2 or {b.client_partner, b.server_partner} != set(self.legal_basis):
                    out.append(
                        "bilateral: client and server must be the two partners in legal_basis"
                    )
                out.extend(
                    f"bilateral: {problem}"
                    for problem in psi_limits.settings_problems(
                        b.false_positive_rate, b.data_structure
                    )
                )
        return out

    def with_version(self, version: int) -> Purpose:
        """The same purpose under another version number."""
        return replace(self, version=version)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/TOML-friendly dict (the stored form)."""
        out: dict[str, Any] = {
            "id": self.id,
            "description": self.description,
            "identifier_kind": self.identifier_kind,
            "threshold": self.threshold,
            "disclosure": self.disclosure,
            "result_retention_days": self.result_retention_days,
            "max_set_size": self.max_set_size,
            "covenant_id": self.covenant_id,
            "dpia_reference": self.dpia_reference,
            "legal_basis": dict(sorted(self.legal_basis.items())),
            "mode": self.mode,
            "version": self.version,
        }
        if self.bilateral is not None:
            out["bilateral"] = {
                "client_partner": self.bilateral.client_partner,
                "server_partner": self.bilateral.server_partner,
                "size_only": self.bilateral.size_only,
                "false_positive_rate": self.bilateral.false_positive_rate,
                "data_structure": self.bilateral.data_structure,
            }
        return out

    def differences(self, other: Purpose) -> dict[str, tuple[Any, Any]]:
        """Every field (but the version) whose value differs: field -> (this, other).

        ``legal_basis`` and ``bilateral`` compare per entry (``legal_basis.gemeente``),
        so a diff names the partner whose basis changed, not the whole table.
        """
        mine, theirs = self.to_dict(), other.to_dict()
        out: dict[str, tuple[Any, Any]] = {}
        for key in sorted((set(mine) | set(theirs)) - {"version"}):
            a, b = mine.get(key), theirs.get(key)
            if a == b:
                continue
            if isinstance(a, dict) and isinstance(b, dict):
                for sub in sorted(set(a) | set(b)):
                    if a.get(sub) != b.get(sub):
                        out[f"{key}.{sub}"] = (a.get(sub), b.get(sub))
            else:
                out[key] = (a, b)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "purpose") -> Purpose:
        """Build and validate a purpose; errors name the source and the field."""
        required = (
            "id",
            "description",
            "identifier_kind",
            "threshold",
            "disclosure",
            "result_retention_days",
            "max_set_size",
            "covenant_id",
            "dpia_reference",
            "legal_basis",
        )
        missing = [k for k in required if k not in data]
        if missing:
            raise ConfigError(f"{source}: missing field(s): {', '.join(missing)}")
        known = {*required, "mode", "bilateral", "version"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field(s): {', '.join(unknown)}")
        try:
            bil = data.get("bilateral")
            bilateral = (
                Bilateral(
                    client_partner=str(bil["client_partner"]),
                    server_partner=str(bil["server_partner"]),
                    size_only=bool(bil.get("size_only", False)),
                    false_positive_rate=float(bil.get("false_positive_rate", 1e-9)),
                    data_structure=str(bil.get("data_structure", "gcs")),
                )
                if bil is not None
                else None
            )
            legal = data["legal_basis"]
            if not isinstance(legal, Mapping):
                raise ConfigError(f'{source}: legal_basis must be a table partner = "basis"')
            return cls(
                id=str(data["id"]),
                description=str(data["description"]),
                identifier_kind=str(data["identifier_kind"]),
                threshold=_int(data["threshold"], "threshold", source),
                disclosure=str(data["disclosure"]),
                result_retention_days=_int(
                    data["result_retention_days"], "result_retention_days", source
                ),
                max_set_size=_int(data["max_set_size"], "max_set_size", source),
                covenant_id=str(data["covenant_id"]),
                dpia_reference=str(data["dpia_reference"]),
                legal_basis={str(k): str(v) for k, v in legal.items()},
                mode=str(data.get("mode", "network")),
                bilateral=bilateral,
                version=_int(data.get("version", 1), "version", source),
            )
        except KeyError as exc:
            raise ConfigError(f"{source}: bilateral table is missing {exc.args[0]!r}") from None
        except ConfigError as exc:
            if str(exc).startswith(source):
                raise
            raise ConfigError(f"{source}: {exc}") from None

    def to_proto(self) -> common_pb2.Purpose:
        """The purpose as carried in a manifest."""
        msg = common_pb2.Purpose(
            id=self.id,
            description=self.description,
            identifier_kind=self.identifier_kind,
            threshold=self.threshold,
            disclosure=self.disclosure,
            result_retention_days=self.result_retention_days,
            max_set_size=self.max_set_size,
            covenant_id=self.covenant_id,
            dpia_reference=self.dpia_reference,
            legal_basis=dict(self.legal_basis),
            mode=self.mode,
            version=self.version,
        )
        if self.bilateral is not None:
            msg.bilateral.CopyFrom(
                common_pb2.BilateralSettings(
                    client_partner=self.bilateral.client_partner,
                    server_partner=self.bilateral.server_partner,
                    size_only=self.bilateral.size_only,
                    false_positive_rate=self.bilateral.false_positive_rate,
                    data_structure=self.bilateral.data_structure,
                )
            )
        return msg

    @classmethod
    def from_proto(cls, msg: common_pb2.Purpose) -> Purpose:
        """Rebuild (and re-validate) a purpose received in a manifest."""
        data: dict[str, Any] = {
            "id": msg.id,
            "description": msg.description,
            "identifier_kind": msg.identifier_kind,
            "threshold": msg.threshold,
            "disclosure": msg.disclosure,
            "result_retention_days": msg.result_retention_days,
            "max_set_size": msg.max_set_size,
            "covenant_id": msg.covenant_id,
            "dpia_reference": msg.dpia_reference,
            "legal_basis": dict(msg.legal_basis),
            "mode": msg.mode or "network",
            "version": msg.version or 1,
        }
        if msg.HasField("bilateral"):
            b = msg.bilateral
            data["bilateral"] = {
                "client_partner": b.client_partner,
                "server_partner": b.server_partner,
                "size_only": b.size_only,
                "false_positive_rate": b.false_positive_rate,
                "data_structure": b.data_structure or "gcs",
            }
        return cls.from_dict(data, source="manifest purpose")


def _int(value: Any, name: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{source}: {name} must be a whole number")
    return value


def load_purpose_file(path: Path) -> Purpose:
    """Read a purpose TOML file; errors name the file (and line for TOML syntax)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such purpose file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return Purpose.from_dict(data, source=str(path))
