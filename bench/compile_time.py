"""Compile seconds of the train step against depth: scanned layers should keep it nearly flat.

python bench/compile_time.py [--base small] [--depths 6 12 24 36] [--json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import emit, t5_config

from scaling.experiments import profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="small")
    parser.add_argument("--depths", nargs="+", type=int, default=[6, 12, 24, 36])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # One untimed compile first: a process's first compilation also pays one-time backend start-up.
    profile.profile(t5_config(f"{args.base}-nl{args.depths[0]}"), steps=1, warmup=0)
    rows = []
    for depth in args.depths:
        row = profile.profile(t5_config(f"{args.base}-nl{depth}"), steps=1, warmup=0)
        rows.append({"shape": row["shape"], "layers": depth, "compile_seconds": row["compile_seconds"]})
    for row in rows:
        row["ratio_to_shallowest"] = row["compile_seconds"] / rows[0]["compile_seconds"]
    emit(rows, ["shape", "layers", "compile_seconds", "ratio_to_shallowest"], args.json)


if __name__ == "__main__":
    main()
