"""Writers of the same output folder at once, and writers killed with SIGKILL mid-write, in real processes.

One helper process (``WRITER``) imports the package and loads a pickled explanation once, then forks the
writers: each race forks two children that wait on one pipe and call ``write_explanation`` together, each
exiting 0 or 1 like ``saliency explain`` (a fork costs milliseconds, a fresh interpreter with torch seconds).
A child asked to hang patches its own ``write_explanation`` helpers to stop mid-write, and the test kills it.
"""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import saliency_core as sc

ROOT = Path(__file__).resolve().parents[1]
TRIALS = 20

WRITER = r'''
import copy, json, os, pickle, sys, time
from pathlib import Path

import numpy as np
from saliency_core import explanation

base = pickle.loads(Path(sys.argv[1]).read_bytes())


def variant(who):
    """The explanation as written by ``who``: its own masks, views and info, so that a mix shows."""
    k = {"old": 0.25, "a": 0.5, "b": 1.0}[who]
    e = copy.copy(base)
    e.info = {**base.info, "writer": who}
    e.masks = (base.masks * k).astype(np.float32)
    e.views = {n: v.point(lambda x, k=k: int(x * k)) for n, v in base.views.items()}
    return e


EXPL = {who: variant(who) for who in ("old", "a", "b")}


def child(who, out, overwrite, gate):
    """One writer, exiting like saliency explain: 0 and '-> out', or 1 and 'error: ...'."""
    os.read(gate, 1)
    try:
        folder = explanation.write_explanation(EXPL[who], out, overwrite=overwrite)
        line, code = f"-> {folder}", 0
    except (ValueError, OSError) as exc:
        line, code = f"error: {exc}", 1
    Path(f"{out}.{who}.log").write_text(line)
    os._exit(code)


def race(root, overwrite, trials):
    """``trials`` races of writers a and b into root/t<i>/ (over an old result when overwriting)."""
    for who in EXPL:
        explanation.write_explanation(EXPL[who], Path(root) / "ref" / who)
    for i in range(trials):
        out = Path(root) / "runs" / f"t{i}"
        if overwrite:
            explanation.write_explanation(EXPL["old"], out)
        gate_r, gate_w = os.pipe()
        sys.stdout.flush()
        pids = {}
        for who in ("a", "b"):
            pid = os.fork()
            if pid == 0:
                child(who, out, overwrite, gate_r)
            pids[who] = pid
        os.write(gate_w, b"go")
        codes = {who: os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for who, pid in pids.items()}
        logs = {who: Path(f"{out}.{who}.log").read_text() for who in pids}
        print(json.dumps({"out": str(out), "codes": codes, "logs": logs}), flush=True)


def hang(out, overwrite, stage):
    """A writer that stops for good at ``stage``: after its second file, or after moving the old result aside."""
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        def stop():
            print(f"hanging {os.getpid()}", flush=True)
            time.sleep(600)
        if stage == "file":
            save, calls = explanation._save, []
            def slow(*args, **kwargs):
                name = save(*args, **kwargs)
                calls.append(name)
                if len(calls) == 2:
                    stop()
                return name
            explanation._save = slow
        else:
            from saliency_core import files
            move = files._move_aside
            def slow_move(*args, **kwargs):
                move(*args, **kwargs)
                stop()
            files._move_aside = slow_move
        explanation.write_explanation(EXPL["a"], out, overwrite=overwrite)
        os._exit(0)
    status = os.waitpid(pid, 0)[1]
    print(f"ended {os.WIFSIGNALED(status) and os.WTERMSIG(status)}", flush=True)


command = sys.argv[2]
if command == "race":
    race(sys.argv[3], sys.argv[4] == "overwrite", int(sys.argv[5]))
else:
    hang(sys.argv[3], sys.argv[4] == "overwrite", sys.argv[5])
'''


@pytest.fixture(scope="module")
def pickled(tmp_path_factory, tiny_classifier, chelsea) -> Path:
    """A small explanation (tiny classifier, 90 x 60 image), pickled for the writer processes."""
    expl = sc.explain(chelsea.resize((90, 60)), sc.ExplainConfig(method="center-gaussian", infiller="gray"),
                      classifier=tiny_classifier)
    path = tmp_path_factory.mktemp("expl") / "expl.pkl"
    path.write_bytes(pickle.dumps(expl))
    return path


def _writer(pickled: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", WRITER, str(pickled), *args], stdout=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)


def _race(pickled: Path, root: Path, mode: str) -> list[dict]:
    proc = _writer(pickled, "race", str(root), mode, str(TRIALS))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0
    return [json.loads(line) for line in out.splitlines()]


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _complete_result_of(folder: Path, root: Path) -> str:
    """The writer whose result ``folder`` holds whole (every file listed in result.json, byte for byte)."""
    result = json.loads((folder / "result.json").read_text())
    assert sorted(p.name for p in folder.iterdir()) == result["files"]
    who = result["info"]["writer"]
    assert _files(folder) == _files(root / "ref" / who), f"{folder} mixes files of several writers"
    return who


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_of_two_writers_at_once_exactly_one_wins_and_the_other_is_refused(pickled, tmp_path):
    trials = _race(pickled, tmp_path, "refuse")
    assert len(trials) == TRIALS
    for t in trials:
        assert sorted(t["codes"].values()) == [0, 1], t
        winner = min(t["codes"], key=t["codes"].get)
        loser = "b" if winner == "a" else "a"
        assert t["logs"][winner] == f"-> {t['out']}"
        assert "already exists" in t["logs"][loser], t
        assert _complete_result_of(Path(t["out"]), tmp_path) == winner, "the winner's result was replaced"
    assert _hidden(tmp_path / "runs") == [], "a staging folder was left behind"


def test_two_overwriting_writers_at_once_leave_one_whole_result(pickled, tmp_path):
    trials = _race(pickled, tmp_path, "overwrite")
    winners = []
    for t in trials:
        assert t["codes"] == {"a": 0, "b": 0}, t
        winners.append(_complete_result_of(Path(t["out"]), tmp_path))
    assert "old" not in winners
    assert _hidden(tmp_path / "runs") == [], "a staging folder or a moved-aside result was left behind"


def _hang(pickled: Path, out: Path, stage: str) -> tuple[subprocess.Popen, int]:
    """A writer of ``out`` (overwriting) stopped at ``stage``, and its pid."""
    proc = _writer(pickled, "hang", str(out), "overwrite", stage)
    line = proc.stdout.readline()
    assert line.startswith("hanging "), line
    return proc, int(line.split()[1])


def _kill(proc: subprocess.Popen, pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    assert proc.stdout.readline().strip() == f"ended {int(signal.SIGKILL)}"
    assert proc.wait(timeout=60) == 0


def _earlier_result(pickled: Path, tmp_path: Path):
    """An explanation and ``<tmp>/out/good`` written with it once (the result a later writer must not lose)."""
    expl = pickle.loads(pickled.read_bytes())
    good = tmp_path / "out" / "good"
    sc.write_explanation(expl, good)
    return expl, good


def test_a_writer_killed_mid_write_leaves_the_old_result_and_later_runs_remove_its_staging(pickled, tmp_path):
    expl, good = _earlier_result(pickled, tmp_path)
    old = _files(good)
    proc, pid = _hang(pickled, good, "file")
    try:
        staging = _hidden(good.parent)
        assert len(staging) == 1 and staging[0].startswith(".good."), staging
        # the writer is alive: a write of the same folder meanwhile leaves its staging alone
        with pytest.raises(ValueError, match="already exists"):
            sc.write_explanation(expl, good)
        assert _hidden(good.parent) == staging
    finally:
        _kill(proc, pid)
    assert _files(good) == old, "the old result changed"
    assert _hidden(good.parent) == staging, "nothing runs between the kill and the next write"
    with pytest.raises(ValueError, match="already exists"):  # a refused run cleans up too
        sc.write_explanation(expl, good)
    assert _hidden(good.parent) == [], "the killed writer's staging folder is still there"
    assert _files(good) == old


def test_a_later_overwrite_removes_a_killed_writer_s_staging(pickled, tmp_path):
    expl, good = _earlier_result(pickled, tmp_path)
    proc, pid = _hang(pickled, good, "file")
    _kill(proc, pid)
    assert len(_hidden(good.parent)) == 1
    sc.write_explanation(expl, good, overwrite=True)
    assert _hidden(good.parent) == []
    assert sorted(p.name for p in good.iterdir()) == json.loads((good / "result.json").read_text())["files"]


def test_a_writer_killed_between_moving_the_old_result_aside_and_renaming_its_own_in(pickled, tmp_path):
    """The narrowest window of an overwrite: the next write of the folder puts the old result back first."""
    expl, good = _earlier_result(pickled, tmp_path)
    old = _files(good)
    proc, pid = _hang(pickled, good, "swap")
    _kill(proc, pid)
    assert not good.exists()
    with pytest.raises(ValueError, match="already exists"):  # the old result is back, so this run is refused
        sc.write_explanation(expl, good)
    assert _files(good) == old
    assert _hidden(good.parent) == []
