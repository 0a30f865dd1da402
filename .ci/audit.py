"""Audit the resolved dependencies with pip-audit; the policy is in docs/reliability.md.

A known vulnerability fails CI unless `.ci/audit-allow.txt` lists its id with a reason and a
review date. A machine that cannot reach the vulnerability service (ours reach package indexes
only) audits nothing: that is printed loudly, not passed off as "no known vulnerabilities".
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def allowed() -> dict[str, str]:
    lines = (HERE / "audit-allow.txt").read_text().splitlines()
    rows = [ln.split(maxsplit=1) for ln in lines if ln.strip() and not ln.startswith("#")]
    return {r[0]: r[1] if len(r) > 1 else "" for r in rows}


def main() -> int:
    out = Path(tempfile.mkdtemp()) / "audit.json"
    cmd = [str(Path(sys.executable).with_name("pip-audit")), "--skip-editable",
           "--progress-spinner", "off", "-f", "json", "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if not out.exists():
        print(f"pip-audit failed to run (exit {done.returncode}): {done.stderr[-2000:]}")
        return 1
    deps = json.loads(out.read_text())["dependencies"]
    audited = [d for d in deps if "skip_reason" not in d]
    if not audited:
        print(f"pip-audit: NOT AUDITED — none of {len(deps)} packages could be looked up "
              "(the vulnerability service is unreachable from this machine)")
        return 0
    allow = allowed()
    found = [(d["name"], d["version"], v["id"]) for d in audited for v in d.get("vulns", [])]
    blocking = [f for f in found if f[2] not in allow]
    for name, version, vid in found:
        note = f"allowed: {allow[vid]}" if vid in allow else "BLOCKING"
        print(f"pip-audit: {name} {version} {vid} — {note}")
    print(f"pip-audit: {len(audited)} of {len(deps)} packages audited, {len(found)} findings, "
          f"{len(blocking)} blocking")
    return 1 if blocking else 0


if __name__ == "__main__":
    sys.exit(main())
