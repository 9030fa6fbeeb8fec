"""Marks a running process holds: "running" and "killed" told apart by the lock, not by pid or host."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from setlist import liveness
from setlist.publish import abandon_publishing, cut_short, in_progress, mark_publishing, unmark_publishing

ROOT = Path(__file__).resolve().parents[2]


def test_a_mark_is_alive_while_held_and_dead_once_its_process_is_killed(tmp_path):
    path = tmp_path / "job.running"
    held = liveness.Mark.take(path, {"job": "train"})
    found = liveness.look(path)
    assert found is not None and found.alive and found.facts == {"job": "train"}
    held.release(remove=False)
    assert liveness.look(path) == liveness.Found(path, {"job": "train"}, alive=False)
    held.release(remove=True)  # released already: nothing more happens
    assert path.exists()
    # another process's mark, then that process SIGKILLed: the file stays, the lock went with it
    script = (
        "import os, signal, sys; from pathlib import Path; from setlist import liveness; "
        f"liveness.Mark.take(Path({str(tmp_path / 'other.running')!r}), {{'pid': os.getpid()}}); "
        "print('held', flush=True); sys.stdin.readline(); os.kill(os.getpid(), signal.SIGKILL)"
    )
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline().strip() == b"held"
    other = liveness.look(tmp_path / "other.running")
    assert other is not None and other.alive and other.facts["pid"] == child.pid
    child.stdin.write(b"go\n")
    child.stdin.flush()
    assert child.wait() == -9
    other = liveness.look(tmp_path / "other.running")
    assert other is not None and not other.alive
    assert liveness.look(tmp_path / "none.running") is None


def test_a_publish_is_in_progress_while_marked_and_cut_short_once_abandoned(tmp_path):
    assert cut_short(tmp_path) is None and in_progress(tmp_path) is None
    mark_publishing(tmp_path, "incremental")
    running = in_progress(tmp_path)
    assert running is not None and running.startswith("an incremental publish started") and cut_short(tmp_path) is None
    abandon_publishing(tmp_path)  # it ended in an error: not running, and its files may be half-written
    said = cut_short(tmp_path)
    assert said is not None and "never finished" in said and in_progress(tmp_path) is None
    mark_publishing(tmp_path, "full")  # the next publish takes the mark over
    unmark_publishing(tmp_path)
    assert cut_short(tmp_path) is None and in_progress(tmp_path) is None
