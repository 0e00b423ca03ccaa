"""`make audit`: the installed dependencies against known vulnerabilities (pip-audit).

Fails (exit 1) on a known vulnerability unless `audit-allowlist.txt` lists its id with a
reason ("ID  why it does not apply here"); fails (exit 2) when most packages could not be
audited at all (no vulnerability service reachable), rather than passing on no data.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALLOWLIST = ROOT / "audit-allowlist.txt"
MOST = 0.5  # audited below this share of packages: the result says nothing


def allowlisted() -> dict[str, str]:
    """Vulnerability id -> the reason it is accepted."""
    if not ALLOWLIST.exists():
        return {}
    accepted = {}
    for line in ALLOWLIST.read_text("utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            vuln, _, why = line.partition(" ")
            if not why.strip():
                sys.exit(f"{ALLOWLIST}: '{vuln}' needs a reason after it")
            accepted[vuln] = why.strip()
    return accepted


def main() -> int:
    site = sysconfig.get_paths()["purelib"]
    run = subprocess.run(
        [sys.executable, "-m", "pip_audit", "--progress-spinner", "off", "--path", site,
         "--skip-editable", "--format", "json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if not run.stdout.strip():
        print(run.stderr, file=sys.stderr)
        return 2
    found = json.loads(run.stdout)["dependencies"]
    skipped = [d for d in found if d.get("skip_reason")]
    accepted = allowlisted()
    open_vulns = [
        (d["name"], d["version"], v["id"], v.get("fix_versions") or [])
        for d in found
        for v in d.get("vulns") or []
        if v["id"] not in accepted and not set(v.get("aliases") or []) & accepted.keys()
    ]
    audited = len(found) - len(skipped)
    print(f"{audited} of {len(found)} packages audited; {len(open_vulns)} open vulnerabilities")
    for name, version, vuln, fixes in open_vulns:
        print(f"  {name} {version}: {vuln} (fixed in {', '.join(fixes) or 'no release yet'})")
    if audited < MOST * len(found):
        reason = skipped[0]["skip_reason"] if skipped else ""
        print(
            f"most packages could not be audited ({reason}); reach PyPI's JSON API or OSV "
            "from this machine and run `make audit` again",
            file=sys.stderr,
        )
        return 2
    return 1 if open_vulns else 0


if __name__ == "__main__":
    sys.exit(main())
