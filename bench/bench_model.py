"""Real-time factors of whole-file resynthesis and of the streaming step, with and without XLA.

Run: ``make bench`` (or ``python bench/bench_model.py --threads 1``). The full-size model is
magenta-ddsp's solo instrument imported from ``../shared/fixtures`` (or ``--model``); the small
real-time size runs on fresh weights (speed does not depend on their values). A real-time factor
is seconds of audio rendered per second of computation, measured in this run on this machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tuibend  # noqa: E402
from tuibend.model.config import SIZES, DecoderConfig, ModelConfig  # noqa: E402
from tuibend.model.decoder import initial_weights  # noqa: E402


def features(seconds: float, frame_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """A sung-like contour: gliding pitch with vibrato and a breathing loudness."""
    t = np.arange(int(seconds * frame_rate)) / frame_rate
    f0 = 220.0 * 2 ** (np.sin(2 * np.pi * 0.1 * t)) * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
    loudness = -30.0 + 10.0 * np.sin(2 * np.pi * 0.3 * t)
    return f0.astype(np.float32), loudness.astype(np.float32)


def seconds_per_call(call, repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up (compilation) call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def whole_file_factor(model, seconds: float, jit: bool) -> float:
    f0, loudness = features(seconds, model.config.frame_rate)
    f0 = tf.constant(f0[None, :, None])
    loudness = tf.constant(loudness[None, :, None])
    noise = tf.random.uniform([1, f0.shape[1] * model.config.hop], -1.0, 1.0)
    render = tf.function(model._render, jit_compile=jit)
    elapsed = seconds_per_call(lambda: render(f0, loudness, noise).numpy(), repeats=3 if seconds > 10 else 10)
    return seconds / elapsed


def stream_factor(model, block_samples: int, jit: bool, seconds: float = 4.0) -> float:
    block_frames = block_samples // model.config.hop
    stream = model.stream(block_frames, jit=jit)
    f0, loudness = features(seconds, model.config.frame_rate)
    n_blocks = len(f0) // block_frames

    def run():
        for block in range(n_blocks):
            window = slice(block * block_frames, (block + 1) * block_frames)
            stream.step(f0[window], loudness[window])

    return seconds / seconds_per_call(run, repeats=3)


def solo_model(path: str | None):
    if path:
        return tuibend.load_model(path)
    checkpoint = Path(os.environ.get("TUIBEND_FIXTURES", REPO.parent / "shared" / "fixtures")) / "ddsp" / \
        "solo_instrument_ckpt"
    return tuibend.load_model(tuibend.import_ddsp(checkpoint, Path(tempfile.mkdtemp()) / "solo"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a tuibend model folder (default: the imported ddsp fixture)")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow intra-op threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="skip the 60 s file")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    small_config = ModelConfig(name="small", decoder=DecoderConfig(**SIZES["small"]))
    small_weights = initial_weights(small_config.decoder)
    small_weights["reverb/ir"] = np.random.default_rng(0).normal(0, 1e-3, 48000).astype(np.float32)
    models = {"solo (imported, 4.8 M)": solo_model(args.model),
              "small (1.9 M)": tuibend.TimbreModel(small_config, small_weights)}

    rows = []
    for label, model in models.items():
        for seconds in (4.0,) if args.quick else (4.0, 60.0):
            rows.append((label, f"whole file {seconds:.0f} s", whole_file_factor(model, seconds, False),
                         whole_file_factor(model, seconds, True)))
        for block in (64, 256, 1024):
            rows.append((label, f"stream, {block}-sample blocks", stream_factor(model, block, False),
                         stream_factor(model, block, True)))

    device = "GPU" if tf.config.list_physical_devices("GPU") else f"CPU, {args.threads} thread(s)"
    print(f"Real-time factors (audio seconds per compute second), TensorFlow {tf.__version__}, {device}, "
          "with reverb\n")
    print("| model | work | tf.function | tf.function + XLA | XLA speed-up |")
    print("| --- | --- | ---: | ---: | ---: |")
    for label, work, plain, xla in rows:
        print(f"| {label} | {work} | {plain:.1f}x | {xla:.1f}x | {xla / plain:.2f} |")


if __name__ == "__main__":
    main()
