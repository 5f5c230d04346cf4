"""Training step time per model size and batch, on this machine (all its cores, as training uses them).

Run: ``python bench/bench_training.py`` (needs a dataset: ``--data DATA``, else one is built from the
reference fixtures' audio). magenta-ddsp 3.7.0's own step was measured on this machine kind
(2 cores, batch 16, 4 s examples) at 4.2 s (small decoder) and 5.7 s (solo); magenta-ddsp cannot be
installed here (Python 3.11), so those two figures are quoted from that measurement, not re-measured.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tuibend.training.dataset import build_dataset  # noqa: E402
from tuibend.training.trainer import Trainer, TrainingConfig, batches, fresh_model  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    data = args.data or fixture_dataset()
    print("| size | batch | XLA | seconds per step | steps/s | magenta-ddsp (brief) / ours |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for size, batch, jit in itertools.product(("small", "solo"), (8, 16), (False, True)):
        config = TrainingConfig(size=size, batch_size=batch, jit=jit)
        trainer = Trainer(fresh_model(config, size), config)
        stream = batches(data, "train", batch, 0)
        trainer.train_step(next(stream))  # tracing
        times = []
        for _ in range(args.steps):
            started = time.perf_counter()
            trainer.train_step(next(stream))
            times.append(time.perf_counter() - started)
        seconds = float(np.median(times))
        ratio = f"{MAGENTA_SECONDS[size] / seconds:.2f}" if batch == 16 else "-"
        print(f"| {size} | {batch} | {'yes' if jit else 'no'} | {seconds:.2f} | {1 / seconds:.2f} | {ratio} |",
              flush=True)


if __name__ == "__main__":
    main()
