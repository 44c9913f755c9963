"""Every benchmark in turn, each writing its section of docs/benchmarks.md.

    python benchmarks/all.py          # about 50 minutes on 2 cores (backends.py: ~35, its builds)

Each script runs in its own process (peak-memory measurements need fresh ones anyway); a failure
stops the run with that script's exit status.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "compile_speed.py", "rewrites.py", "peers.py", "efficiency.py", "serving.py", "backends.py"
)


def main() -> int:
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        status = subprocess.run([sys.executable, str(HERE / script)], check=False).returncode
        if status:
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
