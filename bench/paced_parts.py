"""Where the engine's block path spends its time, part by part, back to back and paced at real time.

Run: ``python bench/paced_parts.py`` (about a minute). The microphone path of ``bench/realtime.py`` (the live
analysis of the block in the kernel, a fader moved, the controller's values for the block, the native kernel's
step with five bends in bfloat16, the guard, DC blocker and limiter) at 256-sample blocks, each part timed on its
own: back to back, paced at real time with the
thread asleep between blocks (as the engine's model thread waits), and paced with the thread spinning in Python
between blocks instead (it never sleeps, so its core is never handed back). If the paced parts cost more than
back to back whether the thread slept or spun, what cools the caches between blocks is other work on the core,
not the sleep. Printed: microseconds a block, the median of ``--rounds`` rounds, for each model, and the totals
with and without the analysis (a microphone, a prepared file).
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
from realtime import BENDS, ENGINE_BLOCK, MOVED_FADER, fader_positions, features, full_model, model_options, voice

import tuibend
from tuibend.bend.rig import BendController, BendRig
from tuibend.engine.session import live_input
from tuibend.model.layout import point_widths
from tuibend.model.timbre import TimbreModel
from tuibend.native.control import KernelFill
from tuibend.native.safety import safety_chain
from tuibend.native.stream import NativeStream

PARTS = ("live analysis", "fader set", "controller advance", "the kernel's step (with its Python call)", "safety chain")
BLOCKS = 250  # 4 s at real time
WAYS = ("back to back", "paced, asleep between blocks", "paced, spinning between blocks")


def part_times(model: TimbreModel, rounds: int) -> dict[str, np.ndarray]:
    """Median microseconds a block of each part, each way."""
    config = model.config
    frames = ENGINE_BLOCK // config.hop
    rig = BendRig(BENDS, point_widths(config.decoder), frames, graph=False)
    controller = BendController(rig, config.frame_rate, fill=KernelFill)
    stream = NativeStream(model, rig, frames, bfloat16=True)
    safety = safety_chain(config.sample_rate, native=True)
    live = live_input(model, "crepe-tiny", kernel="native", bfloat16=True)
    f0, loudness = features(10.0, config.frame_rate)
    audio = voice(f0, loudness, config.hop, config.sample_rate)
    n_blocks = len(f0) // frames
    faders = fader_positions(n_blocks)
    period = ENGINE_BLOCK / config.sample_rate

    def run(way: str) -> np.ndarray:
        totals, deadline = np.zeros(len(PARTS)), time.perf_counter()
        for index in range(BLOCKS):
            window = slice(index % n_blocks * frames, (index % n_blocks + 1) * frames)
            marks = [time.perf_counter()]
            live.process(audio[window.start * config.hop:window.stop * config.hop])
            marks.append(time.perf_counter())
            controller.set(*MOVED_FADER, float(faders[index % n_blocks]))
            marks.append(time.perf_counter())
            controller.advance()
            marks.append(time.perf_counter())
            out = stream.step(f0[window], loudness[window])
            marks.append(time.perf_counter())
            safety.process(out)
            marks.append(time.perf_counter())
            totals += np.diff(marks)
            if way == WAYS[1]:
                deadline += period
                time.sleep(max(0.0, deadline - time.perf_counter()))
            elif way == WAYS[2]:
                deadline += period
                while time.perf_counter() < deadline:
                    pass
        return 1e6 * totals / BLOCKS

    run(WAYS[0])  # warm-up
    gc.collect()
    gc.freeze()  # as the engine does before it plays
    runs = {way: [] for way in WAYS}
    for _ in range(rounds):
        for way in WAYS:
            runs[way].append(run(way))
    return {way: np.median(np.array(times), axis=0) for way, times in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_options(parser)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three ways, alternating (default 2)")
    args = parser.parse_args()
    models = {"choir (small)": tuibend.load_model(args.small), "solo (full)": full_model(args.full)}
    print(f"Microseconds a block ({ENGINE_BLOCK} samples), the median of {args.rounds} rounds of {BLOCKS} blocks "
          "each way, alternating:\n")
    print("| model | way | " + " | ".join(PARTS) + " | total: microphone | total: prepared file |")
    print("| --- | --- | " + " | ".join("---:" for _ in PARTS) + " | ---: | ---: |")
    for label, model in models.items():
        for way, times in part_times(model, args.rounds).items():
            parts = " | ".join(f"{t:.0f}" for t in times)
            print(f"| {label} | {way} | {parts} | {times.sum():.0f} | {times[1:].sum():.0f} |")


if __name__ == "__main__":
    main()
