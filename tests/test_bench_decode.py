"""bench/decode.py on a tiny shape: rows are complete, and both sides decode the same inputs to the same ids."""

import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import decode as bench_decode

TINY = "tiny-nl1-dm32-ff64-nh2-kv16"


def test_rows_for_greedy_and_beam_search(capsys):
    rows = bench_decode.main(
        ["--shapes", TINY, "--beams", "1", "2", "--batch", "2", "--inputs-length", "8", "--max-length", "5"]
        + ["--rounds", "1", "--json"]
    )
    assert [row["beam"] for row in rows] == [1, 2]
    for row in rows:
        assert set(bench_decode.COLUMNS) | {"ours_steps", "peer_steps", "rounds", "peer"} <= row.keys()
        numbers = [row[k] for k in bench_decode.COLUMNS if k.endswith(("per_second", "seconds")) or "ratio" in k]
        assert all(math.isfinite(v) and v > 0 for v in numbers)
        assert row["ratio_min"] <= row["ratio"] <= row["ratio_max"]
        # transformers with its cache and ours decode alike, so both sides did the same work.
        assert row["same_output"] == 1.0 and row["ours_steps"] == row["peer_steps"]
        assert row["ours_tokens_per_second"] == pytest.approx(2 * row["ours_steps"] / row["ours_seconds"])
    assert len(capsys.readouterr().out.splitlines()) == 2  # one JSON object per row
