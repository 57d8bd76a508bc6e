"""bench.turn_phases end to end on SQLite, in its own process (it sets Django up itself): every
turn reaches every step, in order. No timing assertions."""

import json
import subprocess
import sys

import pytest

from bench.runner import ROOT, child_env
from bench.turn_phases import STEPS


@pytest.mark.parametrize("later", [False, True], ids=["first turns", "later turns"])
def test_every_turn_passes_every_step_in_order(later):
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.turn_phases",
            "--embedded",
            "--turns",
            "12",
            "--json",
            *(["--later", "--pause-ms", "5"] if later else []),
        ],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode()[-3000:]
    result = json.loads(completed.stdout.decode().strip().splitlines()[-1])

    assert len(result["first_chunk_ms"]) == len(result["fake_ms"]) == len(result["steps"]) == 12
    steps = [step for step, _, _ in STEPS]
    for turn in result["steps"]:
        assert list(turn) == steps  # each step reached, first in this order
        assert [turn[step] for step in steps] == sorted(turn[step] for step in steps)
    assert all(
        0 < turn[steps[-1]] * 1000 <= ms for turn, ms in zip(result["steps"], result["first_chunk_ms"], strict=True)
    )
