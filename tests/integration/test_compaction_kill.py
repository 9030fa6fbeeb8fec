"""A compaction process killed with SIGKILL between two steps: the child stops at the chosen step and
says so, the test kills it there, and the next run loses and duplicates nothing. The dead process's
lock goes with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from setlist import swap
from setlist.compaction import compact
from tests.unit.test_compaction import _crash_fixture, _crash_target, ids, settled_ids

ROOT = Path(__file__).resolve().parents[2]

# stops at the first checkpoint named argv[1] and waits there, on a pipe only the test closes
CHILD = """
import sys
from pathlib import Path
from setlist import swap
from setlist.compaction import compact

at, root, target = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])

def stop(step):
    if step == at:
        print(step, flush=True)
        sys.stdin.read()

swap.checkpoint = stop
compact(root, target_bytes=target, min_age_s=0)
print("finished", flush=True)
"""


@pytest.mark.parametrize("step", ["staged", "committed", "renamed", "visible", "deleted"])
def test_a_compaction_killed_at_a_step_is_finished_by_the_next_run(tmp_path: Path, step: str) -> None:
    log = _crash_fixture(tmp_path / "events")
    target = _crash_target(log)
    before = ids(log)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, step, str(log.root), str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env=env,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == step  # blocks until the child is there (or has died)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert (len(swap.pending(log.root)) == 1) == (step != "staged")  # committed from the manifest on
    assert settled_ids(log.root) in (before, Counter(set(before)))
    assert set(ids(log)) == set(before)
    report = compact(log.root, target_bytes=target, min_age_s=0).get("events")
    assert report.recovered == (step != "staged")
    assert ids(log) == Counter(set(before))
    assert not swap.pending(log.root)
    assert not [p for p in log.root.rglob("*") if p.name.endswith(".swap.tmp")]
