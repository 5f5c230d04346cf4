"""`tuibend render` as a user gets it: a 4 s file through the bundled choir, end to end as typed (a new
process: start-up, analysis from the cache, render, write), the time the command itself reports for its one
render after start-up, and the render repeated in one process (the same work, warm), by the native kernel
(the default: its layers in bfloat16 where the CPU has them, its blocks shared among every core the process may
use; on one thread; and in float32) and by TensorFlow's stream (the reference), measured in one run,
alternating. Real-time factor: seconds of audio per second of computation.

Run: ``python bench/render.py [--seconds 4] [--repeats 3] [--model M]``. Prints a Markdown table. ``--model``:
another model, a name or a folder (magenta-ddsp's solo model, imported with ``tuibend import-ddsp``, is the one
magenta-ddsp's own resynthesis was measured with).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import soundfile

import tuibend
from tuibend.native import available_cores
from tuibend.places import bundled
from tuibend.render import render_file

# what renders -> the command line's options for it, and render_file's
KERNELS = {"native": (["--kernel", "native"], {"kernel": "native"}),
           "native, one thread": (["--kernel", "native", "--threads", "1"], {"kernel": "native", "threads": 1}),
           "native float32": (["--kernel", "native", "--float32"], {"kernel": "native", "bfloat16": False}),
           "tensorflow": (["--kernel", "tensorflow"], {"kernel": "tensorflow"})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default=str(bundled("models", "choir")))
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tuibend-render-"))
    audio, rate = soundfile.read(bundled("audio", "demo-voice.flac"))
    source = folder / "in.wav"
    soundfile.write(source, audio[:int(args.seconds * rate)], rate)
    model = tuibend.load_model(args.model)
    render_file(model, source, folder / "warm.wav")  # the analysis cached, as a second render of a file finds it
    in_process = {kernel: [] for kernel in KERNELS}
    typed = {kernel: [] for kernel in KERNELS}
    after_start_up = {kernel: [] for kernel in KERNELS}  # what the command itself reports: its one render
    for _ in range(args.repeats):
        for kernel, (options, arguments) in KERNELS.items():
            started = time.perf_counter()
            render_file(model, source, folder / "in-process.wav", **arguments)
            in_process[kernel].append(time.perf_counter() - started)
            started = time.perf_counter()
            result = subprocess.run([sys.executable, "-m", "tuibend.cli", "render", str(source), "-o",
                                     str(folder / "typed.wav"), *options, "--model", args.model],
                                    check=True, capture_output=True, text=True)
            typed[kernel].append(time.perf_counter() - started)
            after_start_up[kernel].append(float(re.search(r"rendered in ([\d.]+) s", result.stdout)[1]))
    print(f"`tuibend render` of {args.seconds:g} s of the demo voice through {model.config.name} (analysis cached), "
          f"median of "
          f"{args.repeats}, one run, alternating:\n")
    print("| kernel | render in one process (s) | real-time factor | `tuibend render` after start-up (s) "
          "| `tuibend render` as typed (s) |")
    print("|---|---|---|---|---|")
    for kernel in KERNELS:
        seconds = statistics.median(in_process[kernel])
        print(f"| {kernel} | {seconds:.3f} | {args.seconds / seconds:.1f}x | "
              f"{statistics.median(after_start_up[kernel]):.3f} | {statistics.median(typed[kernel]):.2f} |")
    ratio = statistics.median(in_process["tensorflow"]) / statistics.median(in_process["native"])
    shared = statistics.median(after_start_up["native, one thread"]) / statistics.median(after_start_up["native"])
    print(f"\nThe native kernel renders {ratio:.1f}x faster than TensorFlow's stream in one process; its blocks "
          f"shared among this machine's {available_cores()} cores, {shared:.2f}x faster than on one (after start-up).")


if __name__ == "__main__":
    main()
