"""Write the segment app's evaluation cases (src/bastion/apps/segment/eval/requests.jsonl).

Each request below was written by hand with the specification it means; the member set a
case expects is that specification run over the demo company at scale 1.0 (`make demo`),
as alice (exec: she may read every record the segment draws on). Rerun after the demo data
or the specification format changes:

    python scripts/write_segment_eval.py --home DEMO_HOME
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path
from typing import Any

from bastion.apps.segment import EVAL_REQUESTS, SegmentSettings
from bastion.apps.segment.query import SegmentQuery
from bastion.apps.segment.spec import SegmentSpec
from bastion.config import load_config
from bastion.grounding.retriever import readable_by
from bastion.platform import Platform

AS_OF = "2026-01-05"  # the demo data's last day
MFG = {"industry": ["Manufacturing"]}
YEAR_2025 = {"since": "2025-01-01", "until": "2025-12-31"}

# (request, specification): the specification lists only the filters the request sets.
REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("Contacts at manufacturing accounts", {"account": MFG}),
    ("Everyone at our mining customers", {"account": {"industry": ["Mining"]}}),
    ("People at utilities", {"account": {"industry": ["Utilities"]}}),
    ("Contacts in the chemicals industry", {"account": {"industry": ["Chemicals"]}}),
    ("Logistics companies' contacts", {"account": {"industry": ["Logistics"]}}),
    ("Food and beverage contacts", {"account": {"industry": ["Food & Beverage"]}}),
    ("Pharmaceutical customers", {"account": {"industry": ["Pharmaceuticals"]}}),
    ("Oil and gas accounts", {"account": {"industry": ["Oil & Gas"]}}),
    ("Contacts at agriculture accounts", {"account": {"industry": ["Agriculture"]}}),
    ("Facilities management contacts", {"account": {"industry": ["Facilities Management"]}}),
    (
        "Contacts at mining or oil and gas accounts",
        {"account": {"industry": ["Mining", "Oil & Gas"]}},
    ),
    (
        "Food & beverage and pharmaceuticals contacts",
        {"account": {"industry": ["Food & Beverage", "Pharmaceuticals"]}},
    ),
    ("Contacts in the US West region", {"account": {"region": ["US West"]}}),
    ("Customers in Canada", {"account": {"region": ["Canada"]}}),
    ("Everyone at US South accounts", {"account": {"region": ["US South"]}}),
    (
        "Contacts at US East or US Central accounts",
        {"account": {"region": ["US East", "US Central"]}},
    ),
    ("Strategic accounts' contacts", {"account": {"tier": ["strategic"]}}),
    ("Contacts at SMB accounts", {"account": {"tier": ["smb"]}}),
    ("Growth tier contacts", {"account": {"tier": ["growth"]}}),
    (
        "Manufacturing contacts in US Central",
        {"account": {"industry": ["Manufacturing"], "region": ["US Central"]}},
    ),
    (
        "Strategic utilities accounts in US East",
        {"account": {"industry": ["Utilities"], "region": ["US East"], "tier": ["strategic"]}},
    ),
    ("Mining contacts in Canada", {"account": {"industry": ["Mining"], "region": ["Canada"]}}),
    (
        "Logistics contacts at SMB accounts",
        {"account": {"industry": ["Logistics"], "tier": ["smb"]}},
    ),
    (
        "Contacts at accounts with more than 100000000 USD annual revenue",
        {"account": {"min_revenue_usd": 100000000}},
    ),
    (
        "Contacts at accounts with revenue under 50000000 USD",
        {"account": {"max_revenue_usd": 50000000}},
    ),
    (
        "Manufacturing accounts with revenue of at least 200000000 USD",
        {"account": {"industry": ["Manufacturing"], "min_revenue_usd": 200000000}},
    ),
    ("Plant managers", {"contact": {"job_title": ["plant manager"]}}),
    ("Buyers at our customers", {"contact": {"job_title": ["buyer"]}}),
    ("CFOs", {"contact": {"job_title": ["cfo"]}}),
    (
        "Engineers at manufacturing accounts",
        {"account": MFG, "contact": {"job_title": ["engineer"]}},
    ),
    (
        "Maintenance people at utilities",
        {"account": {"industry": ["Utilities"]}, "contact": {"job_title": ["maintenance"]}},
    ),
    (
        "IT managers at strategic accounts",
        {"account": {"tier": ["strategic"]}, "contact": {"job_title": ["it manager"]}},
    ),
    (
        "Energy managers in US West",
        {"account": {"region": ["US West"]}, "contact": {"job_title": ["energy manager"]}},
    ),
    ("EHS managers", {"contact": {"job_title": ["ehs"]}}),
    (
        "Directors at mining accounts",
        {"account": {"industry": ["Mining"]}, "contact": {"job_title": ["director"]}},
    ),
    ("Contacts who bought in the last 90 days", {"orders": {"within_days": 90}}),
    ("Customers who ordered in the last 30 days", {"orders": {"within_days": 30}}),
    ("Contacts who purchased in the last 180 days", {"orders": {"within_days": 180}}),
    ("Contacts who placed an order in the last year", {"orders": {"within_days": 365}}),
    ("Contacts who ordered in 2025", {"orders": YEAR_2025}),
    ("Contacts who ordered since 2025-10-01", {"orders": {"since": "2025-10-01"}}),
    ("Contacts who ordered before 2025-01-01", {"orders": {"until": "2024-12-31"}}),
    ("Contacts who bought PowerTap E1", {"orders": {"product": ["PowerTap E1"]}}),
    ("Buyers of the VibeSense V3", {"orders": {"product": ["VibeSense V3"]}}),
    ("Contacts who ordered ThermoPoint T1 probes", {"orders": {"product": ["ThermoPoint T1"]}}),
    ("Customers who bought the AirGuard Q1", {"orders": {"product": ["AirGuard Q1"]}}),
    ("Contacts who ordered a FlowMeter F4", {"orders": {"product": ["FlowMeter F4"]}}),
    ("Contacts who purchased HumiTrack H2 sensors", {"orders": {"product": ["HumiTrack H2"]}}),
    ("Who bought the PressureLine P2", {"orders": {"product": ["PressureLine P2"]}}),
    (
        "Contacts who bought EdgeGateway G2 Rugged gateways",
        {"orders": {"product": ["EdgeGateway G2 Rugged"]}},
    ),
    ("Contacts who ordered an EdgeGateway Lite", {"orders": {"product": ["EdgeGateway Lite"]}}),
    (
        "Customers who bought any EdgeGateway",
        {"orders": {"product": ["EdgeGateway G2", "EdgeGateway G2 Rugged", "EdgeGateway Lite"]}},
    ),
    ("Contacts who bought the LTE modem module", {"orders": {"product": ["LTE modem module"]}}),
    (
        "Contacts who bought PowerTap E1 in the last 90 days",
        {"orders": {"product": ["PowerTap E1"], "within_days": 90}},
    ),
    (
        "VibeSense V3 buyers in the last 180 days",
        {"orders": {"product": ["VibeSense V3"], "within_days": 180}},
    ),
    (
        "Contacts who ordered ThermoPoint T1 or HumiTrack H2",
        {"orders": {"product": ["HumiTrack H2", "ThermoPoint T1"]}},
    ),
    ("Contacts with a returned order", {"orders": {"status": ["returned"]}}),
    ("Contacts with a cancelled order", {"orders": {"status": ["cancelled"]}}),
    ("Contacts whose order is still processing", {"orders": {"status": ["processing"]}}),
    ("Contacts with a shipped order", {"orders": {"status": ["shipped"]}}),
    ("Contacts with an order over 10000 USD", {"orders": {"min_total_usd": 10000}}),
    (
        "Contacts who placed an order worth at least 20000 USD in 2025",
        {"orders": {"min_total_usd": 20000, **YEAR_2025}},
    ),
    ("Contacts who never ordered", {"orders": {"has": False}}),
    (
        "Manufacturing contacts who never placed an order",
        {"account": MFG, "orders": {"has": False}},
    ),
    (
        "Contacts who did not order in the last 180 days",
        {"orders": {"has": False, "within_days": 180}},
    ),
    (
        "Contacts at manufacturing accounts who bought in the last 90 days",
        {"account": MFG, "orders": {"within_days": 90}},
    ),
    (
        "Utilities contacts who bought PowerTap E1",
        {"account": {"industry": ["Utilities"]}, "orders": {"product": ["PowerTap E1"]}},
    ),
    (
        "Food and beverage customers who ordered ThermoPoint T1",
        {"account": {"industry": ["Food & Beverage"]}, "orders": {"product": ["ThermoPoint T1"]}},
    ),
    (
        "US West contacts who bought in the last year",
        {"account": {"region": ["US West"]}, "orders": {"within_days": 365}},
    ),
    (
        "Strategic accounts that ordered VibeSense V3 in 2025",
        {"account": {"tier": ["strategic"]}, "orders": {"product": ["VibeSense V3"], **YEAR_2025}},
    ),
    ("Contacts with a support case", {"cases": {}}),
    ("Contacts with an open support case", {"cases": {"status": ["open"]}}),
    ("Contacts with an open or pending case", {"cases": {"status": ["open", "pending"]}}),
    ("Contacts whose tickets are pending", {"cases": {"status": ["pending"]}}),
    ("Contacts with a closed support case", {"cases": {"status": ["closed"]}}),
    ("Contacts with an urgent case", {"cases": {"priority": ["urgent"]}}),
    ("Contacts with a high or urgent priority ticket", {"cases": {"priority": ["high", "urgent"]}}),
    ("Contacts with a low priority case", {"cases": {"priority": ["low"]}}),
    ("Contacts with a case about firmware", {"cases": {"about": ["firmware"]}}),
    ("Contacts who opened a ticket about SSO", {"cases": {"about": ["sso"]}}),
    ("Contacts with a support case about calibration", {"cases": {"about": ["calibration"]}}),
    ("Contacts with a case about pairing sensors", {"cases": {"about": ["pair"]}}),
    ("Contacts with a ticket about SMS alerts", {"cases": {"about": ["sms"]}}),
    ("Contacts with a case about an invoice", {"cases": {"about": ["invoice"]}}),
    ("Contacts who asked support about webhooks", {"cases": {"about": ["webhook"]}}),
    ("Contacts with an RMA case", {"cases": {"about": ["rma"]}}),
    ("Contacts with a case about Modbus", {"cases": {"about": ["modbus"]}}),
    (
        "Contacts with an open case about firmware",
        {"cases": {"status": ["open"], "about": ["firmware"]}},
    ),
    (
        "Contacts with an urgent ticket about the LTE gateway",
        {"cases": {"priority": ["urgent"], "about": ["lte"]}},
    ),
    ("Contacts who opened a case in the last 90 days", {"cases": {"within_days": 90}}),
    ("Contacts with a support case since 2025-11-01", {"cases": {"since": "2025-11-01"}}),
    (
        "Contacts with a high priority case in the last 180 days",
        {"cases": {"priority": ["high"], "within_days": 180}},
    ),
    ("Contacts with no support cases", {"cases": {"has": False}}),
    ("Contacts without an open case", {"cases": {"has": False, "status": ["open"]}}),
    (
        "Manufacturing contacts with an open case",
        {"account": MFG, "cases": {"status": ["open"]}},
    ),
    (
        "Utilities contacts with a case about firmware",
        {"account": {"industry": ["Utilities"]}, "cases": {"about": ["firmware"]}},
    ),
    (
        "Strategic accounts with an urgent support case",
        {"account": {"tier": ["strategic"]}, "cases": {"priority": ["urgent"]}},
    ),
    (
        "Contacts who bought PowerTap E1 and have a case about the main feeder",
        {"orders": {"product": ["PowerTap E1"]}, "cases": {"about": ["main feeder"]}},
    ),
    (
        "Contacts who ordered in the last 90 days and have an open case",
        {"orders": {"within_days": 90}, "cases": {"status": ["open"]}},
    ),
    (
        "Contacts who bought ThermoPoint T1 and had no support case",
        {"orders": {"product": ["ThermoPoint T1"]}, "cases": {"has": False}},
    ),
    (
        "Contacts at manufacturing accounts with an open support case who bought in the last "
        "90 days",
        {"account": MFG, "orders": {"within_days": 90}, "cases": {"status": ["open"]}},
    ),
    (
        "Mining contacts in Canada who bought EdgeGateway G2 Rugged",
        {
            "account": {"industry": ["Mining"], "region": ["Canada"]},
            "orders": {"product": ["EdgeGateway G2 Rugged"]},
        },
    ),
    (
        "Plant managers at manufacturing accounts who ordered in 2025",
        {"account": MFG, "contact": {"job_title": ["plant manager"]}, "orders": YEAR_2025},
    ),
    (
        "Strategic US West accounts who never ordered",
        {"account": {"region": ["US West"], "tier": ["strategic"]}, "orders": {"has": False}},
    ),
    (
        "Food and beverage contacts with a case about ThermoPoint readings",
        {"account": {"industry": ["Food & Beverage"]}, "cases": {"about": ["thermopoint"]}},
    ),
    (
        "Contacts with an email address at logistics accounts",
        {"account": {"industry": ["Logistics"]}, "contact": {"has_email": True}},
    ),
    (
        "Oil and gas contacts who bought PressureLine P2 in the last year",
        {
            "account": {"industry": ["Oil & Gas"]},
            "orders": {"product": ["PressureLine P2"], "within_days": 365},
        },
    ),
    (
        "Growth tier accounts with a pending ticket",
        {"account": {"tier": ["growth"]}, "cases": {"status": ["pending"]}},
    ),
    (
        "Pharmaceutical contacts who ordered HumiTrack H2",
        {"account": {"industry": ["Pharmaceuticals"]}, "orders": {"product": ["HumiTrack H2"]}},
    ),
    (
        "Chemicals contacts who purchased in the last 180 days and have no open case",
        {
            "account": {"industry": ["Chemicals"]},
            "orders": {"within_days": 180},
            "cases": {"has": False, "status": ["open"]},
        },
    ),
    # Requests that name something the data does not have: nothing matches them.
    ("Contacts at accounts in the Nordics", {}),
    ("Contacts at aerospace companies", {}),
    ("Customers who bought the Acme SuperWidget", {}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="a demo BASTION_HOME (scale 1.0)")
    args = parser.parse_args()
    platform = Platform.open(args.home, load_config(args.home / "bastion.yaml", environ={}))
    alice = platform.access.principal("acme/alice")
    segments = SegmentQuery(platform.db, SegmentSettings().sources, "acme", readable_by(alice))
    lines = []
    for n, (request, spec) in enumerate(REQUESTS, 1):
        gold = SegmentSpec.model_validate(spec)
        members = sorted(m.contact_id for m in segments.members(gold, date.fromisoformat(AS_OF)))
        case = {
            "id": f"segment-{n:03d}",
            "input": {"query": request, "as_of": AS_OF, "save": False},
            "expected": {
                "spec": gold.model_dump(mode="json", exclude_defaults=True),
                "members": members,
            },
        }
        lines.append(json.dumps(case, ensure_ascii=False))
    EVAL_REQUESTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} cases -> {EVAL_REQUESTS}")


if __name__ == "__main__":
    main()
