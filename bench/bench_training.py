"""Training step time per model size and batch, on this machine (all its cores, as training uses them).

Run: ``python bench/bench_training.py`` (needs a dataset: ``--data DATA``, else one is built from the
reference fixtures' audio). ``--workers`` times one and two workers (MultiWorkerMirroredStrategy,
``TF_CONFIG``, 127.0.0.1) on the same global batch, each worker its own process, all on this machine.
magenta-ddsp 3.7.0's own step was measured on this machine kind
(2 cores, batch 16, 4 s examples) at 4.2 s (small decoder) and 5.7 s (solo); magenta-ddsp cannot be
installed here (Python 3.11), so those two figures are quoted from that measurement, not re-measured.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tuibend.training.dataset import build_dataset  # noqa: E402
from tuibend.training.trainer import TrainingConfig, train  # noqa: E402

MAGENTA_SECONDS = {"small": 4.2, "solo": 5.7}  # magenta-ddsp's own step, batch 16, measured apart


def fixture_dataset() -> Path:
    import soundfile

    fixtures = Path(os.environ.get("TUIBEND_FIXTURES", REPO.parent / "shared" / "fixtures"))
    with np.load(fixtures / "crepe" / "crepe_reference.npz") as data:
        audio = np.concatenate([data["flute_audio"], data["choir_audio"]] * 3)
    folder = Path(tempfile.mkdtemp())
    soundfile.write(folder / "take.wav", audio, 16000)
    build_dataset([folder / "take.wav"], folder / "data", tracker="yin", holdout=0.0)
    return folder / "data"


def step_seconds(data: Path, size: str, batch: int, steps: int, jit: bool, precision: str = "float32") -> float:
    """The median time of ``steps`` training steps after a first one (the trace), timed between the reports of
    :func:`train` as ``tuibend train`` runs it (batches read ahead, under this process's strategy); stopped
    after them as Ctrl-C stops a run, before the held-out evaluation that ends a finished one."""
    config = TrainingConfig(size=size, batch_size=batch, jit=jit, precision=precision, steps=steps + 2,
                            checkpoint_every=10**9, eval_every=10**9)
    reported: list[float] = []

    def report(step: int, loss: float, rate: float) -> None:
        reported.append(time.perf_counter())
        if step == steps + 1:
            raise KeyboardInterrupt

    with tempfile.TemporaryDirectory() as folder, contextlib.suppress(KeyboardInterrupt):
        train(data, Path(folder) / size, config, report=report)
    return float(np.median(np.diff(reported)))


def cluster_seconds(data: Path, workers: int, batch: int, steps: int) -> float:
    """A step's time with ``workers`` worker processes on 127.0.0.1 (one: no TF_CONFIG), as the chief sees it."""
    ports = []
    for _ in range(workers):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    processes = []
    for index in range(workers):
        environment = dict(os.environ)
        if workers > 1:
            environment["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                                                   "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen([sys.executable, __file__, "--worker", "--data", str(data),
                                           "--batch", str(batch), "--steps", str(steps)],
                                          stdout=subprocess.PIPE, text=True, env=environment))
    outputs = [process.communicate()[0] for process in processes]
    return float(outputs[0].split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--workers", action="store_true", help="one against two workers, small model")
    parser.add_argument("--precision", action="store_true", help="float32 against mixed, batch 16, XLA")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(step_seconds(args.data, "small", args.batch, args.steps, jit=True), flush=True)
        return
    data = args.data or fixture_dataset()
    if args.precision:
        print("| size | float32 (s per step) | mixed (s per step) | float32 / mixed |")
        print("| --- | ---: | ---: | ---: |")
        for size in ("small", "solo"):
            full, mixed = (step_seconds(data, size, 16, args.steps, True, p) for p in ("float32", "mixed"))
            print(f"| {size} | {full:.2f} | {mixed:.2f} | {full / mixed:.2f} |", flush=True)
        return
    if args.workers:
        print("| workers (processes on this machine) | global batch | seconds per step | against one worker |")
        print("| ---: | ---: | ---: | ---: |")
        one = cluster_seconds(data, 1, 16, args.steps)
        print(f"| 1 | 16 | {one:.2f} | 1.00 |", flush=True)
        two = cluster_seconds(data, 2, 16, args.steps)
        print(f"| 2 | 16 | {two:.2f} | {one / two:.2f} |", flush=True)
        return
    print("| size | batch | XLA | seconds per step | steps/s | magenta-ddsp / ours |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for size, batch, jit in itertools.product(("small", "solo"), (8, 16), (False, True)):
        seconds = step_seconds(data, size, batch, args.steps, jit)
        ratio = f"{MAGENTA_SECONDS[size] / seconds:.2f}" if batch == 16 else "-"
        print(f"| {size} | {batch} | {'yes' if jit else 'no'} | {seconds:.2f} | {1 / seconds:.2f} | {ratio} |",
              flush=True)


if __name__ == "__main__":
    main()
