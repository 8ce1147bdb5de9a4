"""What the benchmarks share: a timestamped log, and each measurement in a fresh process.

A benchmark script runs every measurement ("phase") as ``python SCRIPT --phase JSON`` so that
peak memory (VmHWM), thread pools and compilation caches never leak from one library or model
into the next; the child writes its result as JSON to the file named by the phase's ``out``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def log(message: str) -> None:
    """A timestamped progress line on stderr (stdout holds the results)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def in_fresh_process(script: str, p: dict, what: str) -> dict:
    """Runs ``script --phase p`` in a fresh process; its JSON result, or ``{"error": ...}``
    (logged, naming ``what``) if it failed."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        spec = json.dumps({**p, "out": str(out)})
        rc = subprocess.run([sys.executable, script, "--phase", spec],
                            stdout=sys.stderr).returncode
        if rc or not out.exists():
            log(f"  FAILED (exit code {rc}): {what}")
            return {"error": f"exit code {rc}"}
        return json.loads(out.read_text())
