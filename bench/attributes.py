"""All attribute benchmarks in one run: bench/attributes_face.py (smile, eyes_open, mouth_open)
then bench/attributes_cover.py (eyeglasses, sunglasses, mask, headwear).

    .venv/bin/python bench/attributes.py

Each part prints its Markdown tables and writes its JSON to bench/results/.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    status = 0
    for part in ("attributes_face.py", "attributes_cover.py"):
        print(f"== {part}", flush=True)
        status |= subprocess.run([sys.executable, str(HERE / part)], check=False).returncode
    return status


if __name__ == "__main__":
    raise SystemExit(main())
