"""Filling the {placeholders} in account notes, cases and Slack messages."""

from __future__ import annotations

import random
import re

from bastion.demo.content import DASHBOARDS, MONTHS, RULES, SENSOR_NAMES, SERIAL_PREFIX, SITES


def fill(rng: random.Random, template: str, context: dict[str, str]) -> str:
    """Fill {placeholders}; `a|b|c` alternatives in [[...]] are picked at random."""
    text = re.sub(r"\[\[([^\]]+)\]\]", lambda m: rng.choice(m[1].split("|")), template)
    return text.format_map(context)


def serial_tail(rng: random.Random) -> str:
    return f"2{rng.randrange(3, 6)}{rng.choice('ABCDEFGHK')}-{rng.randrange(10_000, 99_999)}"


def case_context(rng: random.Random) -> dict[str, str]:
    sensor = rng.choice(SENSOR_NAMES)
    return {
        "site": rng.choice(SITES),
        "site2": rng.choice(SITES),
        "sensor": sensor,
        "serial": f"{SERIAL_PREFIX[sensor]}-{serial_tail(rng)}",
        "serial_tail": serial_tail(rng),
        "gw_serial": f"GW2-{serial_tail(rng)}",
        "battery_sensor": rng.choice(SENSOR_NAMES[:4]),
        "gateway": rng.choice(("EdgeGateway G2", "EdgeGateway G2", "EdgeGateway G2 Rugged")),
        "gw_fw": rng.choice(("4.2.1", "4.2.1", "4.2.0", "4.1.7")),
        "invoice": f"INV-2025-{rng.randrange(10_000, 19_999)}",
        "n": str(rng.choice((3, 4, 6, 8, 12, 15, 20, 24, 36))),
        "n2": str(rng.choice((40, 60, 85, 120, 150, 210))),
        "offset": rng.choice(("0.8", "1.2", "1.5", "2", "2.5")),
        "dashboard": rng.choice(DASHBOARDS),
        "rule": rng.choice(RULES),
        "weekday": rng.choice(("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")),
        "deadline": rng.choice(("January 15", "January 20", "January 28", "February 3")),
        "rssi": str(rng.choice((-109, -112, -114, -117, -119))),
        "month": rng.choice(MONTHS),
    }
