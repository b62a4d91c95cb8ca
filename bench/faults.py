"""Kill-and-resume fault injection: `python bench/faults.py --cycles 10`.

A tiny run is started as `difflab train` in a subprocess and killed with SIGKILL at random
moments, some during a step, some in the middle of writing a checkpoint (the child then
sleeps inside the save, after model.safetensors, so the kill lands there), and resumed with
`--resume` each time. Every loss the killed-and-resumed run logs is compared bit for bit with
an uninterrupted reference run of the same config; a cycle whose losses differ is a
divergence. Prints "N cycles, 0 divergences" and the time taken.

The same helpers drive tests/reliability/test_rel_kill.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "training" / "tiny.yaml"
PAUSE_ENV = "DIFFLAB_FAULTS_SAVE_PAUSE"
HOLD_ENV = "DIFFLAB_FAULTS_SAVE_HOLD"
# The child: `difflab train` with, when PAUSE_ENV is set, a pause inside every checkpoint save;
# when HOLD_ENV names a folder, a save into it waits after its first file until killed.
CHILD = f"""
import os, sys, threading, time
import difflab.runs.checkpoint as checkpoint
import os, sys, time
import difflab.runs.checkpoint as checkpoint
pause = float(os.environ.get({PAUSE_ENV!r}, "0"))
hold = os.environ.get({HOLD_ENV!r}, "")
write = checkpoint.save_file
def slow_write(tensors, path, *args, **kwargs):
    write(tensors, path, *args, **kwargs)
    if hold and os.path.basename(os.path.dirname(path)) == hold:
        threading.Event().wait()
    time.sleep(pause)
if pause > 0 or hold:
    checkpoint.save_file = slow_write
from difflab.cli.main import main
raise SystemExit(main(sys.argv[1:]))
"""


def overrides(root: Path, steps: int, *extra: str) -> list[str]:
    """The tiny config: log every step, a checkpoint every 2 steps, no samples or validation."""
    return [
        f"run.root={root}",
        "run.name=faults",
        f"train.steps={steps}",
        "train.batch_size=4",
        "train.log_every=1",
        "train.checkpoint_every=2",
        "train.sample_every=0",
        "train.val_every=0",
        "train.lr_schedule=cosine",
        "data.flip=true",
        *extra,
    ]


def command(args: list[str]) -> list[str]:
    return [sys.executable, "-c", CHILD, "train", *args]


def environment(pause: float = 0.0, hold: str = "") -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), PAUSE_ENV: str(pause)}
    return env | {HOLD_ENV: hold}


def start(
    run_dir: Path, args: list[str], *, pause: float = 0.0, hold: str = ""
) -> subprocess.Popen:
    """`difflab train` fresh (args: a config and overrides) or `--resume run_dir` when it has a
    complete checkpoint; a run killed before its first checkpoint starts over. hold: the name of
    a temporary checkpoint folder whose save waits after its first file until killed."""
    from difflab.runs.checkpoint import latest_checkpoint

    if latest_checkpoint(run_dir) is None:
        shutil.rmtree(run_dir, ignore_errors=True)
        argv = [str(TINY), *args]
    else:
        argv = ["--resume", str(run_dir)]
    return subprocess.Popen(
        command(argv),
        env=environment(pause, hold),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _tmp_folders(run_dir: Path) -> set[tuple[str, tuple[int, int, int] | None]]:
    folder = run_dir / "checkpoints"
    if not folder.is_dir():
        return set()
    return {(p.name, _stat(p)) for p in folder.iterdir() if p.name.startswith(".tmp-")}


def mid_save(run_dir: Path):
    """A test that holds once the child writes a checkpoint (a temporary folder that was not
    there before: a killed save's folder stays until the next save removes it)."""
    before = _tmp_folders(run_dir)
    return lambda: bool(_tmp_folders(run_dir) - before)


def at_step(run_dir: Path, target: int):
    """A test that holds once this child has logged step `target`. A resumed child first
    replaces metrics.jsonl (dropping steps past its checkpoint), so the stale file of the
    killed run is told apart by its inode, time and size."""
    path, before = run_dir / "metrics.jsonl", _stat(run_dir / "metrics.jsonl")

    def ready() -> bool:
        if _stat(path) in (before, None):
            return False
        lines = [line for line in path.read_text().splitlines() if line.endswith("}")]
        return len(lines) > 0 and json.loads(lines[-1]).get("step", 0) >= target

    return ready


def kill_when(
    proc: subprocess.Popen, ready, sig: int = signal.SIGKILL, timeout: float = 120.0
) -> bool:
    """Send sig to proc once ready() holds and wait for it to end; False when it ended first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if ready():
            proc.send_signal(sig)
            proc.wait(timeout)
            return True
        time.sleep(0.005)
    proc.wait()
    return False


def losses(run_dir: Path) -> dict[int, float]:
    from difflab.runs.metrics import read_metrics

    return {r["step"]: r["loss"] for r in read_metrics(run_dir) if "loss" in r}


def reference(root: Path, steps: int) -> dict[int, float]:
    run_dir = root / "faults"
    proc = start(run_dir, overrides(root, steps))
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"reference run failed: {err}")
    return losses(run_dir)


def agrees(run_dir: Path, ref: dict[int, float]) -> bool:
    """Every loss logged so far equals the reference's at the same step (metrics.jsonl may hold
    steps past the checkpoint; resume trims and logs them again)."""
    got = losses(run_dir) if (run_dir / "metrics.jsonl").is_file() else {}
    return all(ref.get(step) == loss for step, loss in got.items())


def one_cycle(run_dir: Path, args: list[str], steps: int, rnd: random.Random) -> str:
    """Start or resume, SIGKILL at a random step or in the middle of a checkpoint save; a run
    too close to its end starts over. Returns where the kill landed."""
    from difflab.runs.checkpoint import latest_checkpoint

    newest = latest_checkpoint(run_dir)
    done = int(newest.name.removeprefix("step-")) if newest is not None else 0
    if done >= steps - 2:
        shutil.rmtree(run_dir)
        done = 0
    if rnd.random() < 0.5:
        proc = start(run_dir, args, pause=0.3)
        killed = kill_when(proc, mid_save(run_dir))
        where = "mid-save"
    else:
        target = rnd.randrange(done + 1, steps)
        proc = start(run_dir, args)
        killed = kill_when(proc, at_step(run_dir, target))
        where = f"after step {target}"
    return where if killed else "not killed (run ended)"


def run_cycles(root: Path, cycles: int, steps: int, seed: int) -> tuple[int, int]:
    """(cycles, divergences): kill `cycles` times, then finish and compare every loss."""
    ref = reference(root / "reference", steps)
    run_dir, args = root / "faults", overrides(root, steps)
    rnd, divergences = random.Random(seed), 0
    for k in range(cycles):
        where = one_cycle(run_dir, args, steps, rnd)
        ok = agrees(run_dir, ref)
        divergences += not ok
        print(f"cycle {k + 1}: killed {where}, losses {'agree' if ok else 'DIVERGE'}")
    proc = start(run_dir, args)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"final resume failed: {err}")
    final = losses(run_dir)
    divergences += final != ref
    return cycles, divergences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--steps", type=int, default=24, help="steps of the tiny run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--root", type=Path, default=None, help="folder for the runs")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    root = args.root or Path(os.environ.get("TMPDIR", "/tmp")) / f"difflab-faults-{os.getpid()}"
    started = time.perf_counter()
    try:
        n, bad = run_cycles(root, args.cycles, args.steps, args.seed)
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    seconds = time.perf_counter() - started
    print(f"{n} cycles, {bad} divergences ({args.steps}-step run, {seconds:.0f} s)")


if __name__ == "__main__":
    main()
