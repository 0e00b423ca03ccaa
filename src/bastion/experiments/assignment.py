"""Sticky assignment: a unit's arm is a pure function of (experiment salt, unit id).

Two independent hashes: one decides whether the unit is enrolled (bucket < traffic), the
other picks its arm from the variant weights. Raising `traffic` enrolls more units but
never moves one that was enrolled, because neither hash depends on the traffic level.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from bastion.config import ExperimentConfig

BUCKETS = 10_000


def bucket(salt: str, purpose: str, unit: str) -> float:
    """A uniform position in [0, 100) for this unit and purpose."""
    digest = hashlib.sha256(f"{salt}:{purpose}:{unit}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") % (BUCKETS * 100)) / (BUCKETS * 100) * 100


def assign(spec: ExperimentConfig, salt: str, unit: str, stopped: Sequence[str] = ()) -> str | None:
    """The arm of `unit`, or None when it is not enrolled. Units of a stopped arm are
    served by the control (first variant) and counted nowhere."""
    if bucket(salt, "traffic", unit) >= spec.traffic:
        return None
    position = bucket(salt, "arm", unit)
    edge = 0.0
    for variant in spec.variants:
        edge += variant.weight
        if position < edge:
            return None if variant.name in stopped else variant.name
    return None if spec.variants[-1].name in stopped else spec.variants[-1].name
