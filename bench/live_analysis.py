"""The live analysis in the kernel against the same analysis framed in numpy, on the engine's paced microphone path.

Run: ``python bench/live_analysis.py`` (about three minutes). The microphone path of ``bench/realtime.py`` (the
analysis of a block, then the fader, controller, the native kernel's step with five bends in bfloat16, guard, DC
blocker and limiter), 256-sample blocks paced at real time, with three analyses of the same CREPE network (the
kernel's, in bfloat16: AMX tiles where the CPU has them, vectors elsewhere) taking turns, ``--rounds`` times
each, so that all see the same machine: ``StreamingAnalyzer`` (framing, loudness FFT and pitch interpolation
in numpy around the network, then ``LiveFeatures``' downmix, onset pitch and held pitch in numpy),
``NativeAnalyzer``'s frames in one kernel call with ``LiveFeatures`` around them in numpy, and
``NativeLiveFeatures`` (all of it in one kernel call, what the engine runs). Printed: each one's paced cost per
block, whole path and analysis, the median over rounds, and each one's ratio to the last.
"""

from __future__ import annotations

import argparse

import numpy as np
from realtime import ENGINE_BLOCK, block_path, full_model, model_options

import tuibend
from tuibend.engine.session import live_input
from tuibend.engine.sources import LiveAnalysis
from tuibend.model.timbre import TimbreModel
from tuibend.pitch.analysis import LiveFeatures, StreamingAnalyzer

PACED_BLOCKS = 250  # 4 s at real time


def compare(label: str, model: TimbreModel, rounds: int) -> None:
    kernel_side = live_input(model, "crepe-tiny", kernel="native", bfloat16=True)
    numpy_side = LiveAnalysis(StreamingAnalyzer(kernel_side.analyzer.tracker, model.config.loudness),
                              resting_f0_hz=kernel_side.resting_f0_hz)
    frames_side = live_input(model, "crepe-tiny", kernel="native", bfloat16=True)
    frames_side.features = LiveFeatures(frames_side.analyzer, frames_side.resting_f0_hz)
    play, _ = block_path(model, ENGINE_BLOCK, 5.0, "native")
    sides = {"numpy framing around the kernel's CREPE": numpy_side,
             "the kernel's frames, onset and held pitch in numpy": frames_side,
             "all in the kernel (the engine's)": kernel_side}
    for live in sides.values():
        play(50, live)  # warm-up
    runs: dict[str, list] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, live in sides.items():
            runs[name].append(play(PACED_BLOCKS, live, paced=True))
    block_ms = 1000.0 * ENGINE_BLOCK / model.config.sample_rate
    medians = {}
    for name, timings in runs.items():
        path = np.median([t.paced_live for t in timings]) * 1000
        analysis = np.median([t.analysis for t in timings]) * 1000
        medians[name] = path
        spread = ", ".join(f"{t.paced_live * 1000:.2f}" for t in timings)
        print(f"| {label} | {name} | {path:.2f} ({spread}) | {analysis:.2f} | {block_ms / path:.1f}x |")
    kernel_ms = medians[list(sides)[-1]]
    for name, path in list(medians.items())[:-1]:
        print(f"| {label} | {name}: ratio | {path / kernel_ms:.2f}x the engine's | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_options(parser)
    parser.add_argument("--rounds", type=int, default=4, help="turns each analysis takes (default 4)")
    args = parser.parse_args()
    print("| model | analysis | microphone path paced, ms a block: median (each round) | of it, the analysis | "
          "real-time factor |")
    print("| --- | --- | --- | ---: | ---: |")
    compare("choir (small, 1.9 M)", tuibend.load_model(args.small), args.rounds)
    compare("solo (full, 4.8 M)", full_model(args.full), args.rounds)


if __name__ == "__main__":
    main()
