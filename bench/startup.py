"""Start-up time of the commands a performer types, end to end, against what each cost when every command
imported TensorFlow first (the baseline: the same command after ``import tensorflow``) and against bare
Python. Each command runs as a new process, as typed, several times; the median is kept.

``tuibend play --headless --device none --duration 1`` is timed to its end: start-up, the model and the bundled
scenes prepared, one second of the demo file paced by the clock, the take written.

Run: ``python bench/startup.py [--repeats 5]``. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = [("--version",), ("--help",), ("models",), ("scenes",), ("paths",), ("info", "choir")]
PLAY = ("play", "--headless", "--device", "none", "--duration", "1")  # one second of audio, paced, included
TARGET_S = 1.0


def seconds(command: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    python = [sys.executable, "-c"]
    bare = seconds([*python, "pass"], args.repeats)
    print(f"bare Python: {bare:.3f} s; target: every command but play under {TARGET_S:.0f} s\n")
    print("| command | tuibend (s) | with TensorFlow first (s, baseline) | speed-up |")
    print("|---|---|---|---|")
    for shown in [*COMMANDS, PLAY]:
        command = shown
        run = "import sys; from tuibend.cli import main; sys.exit(main(sys.argv[1:]))"
        baseline = "import tensorflow; " + run
        if shown is PLAY:  # into a take of its own, not the user's takes folder
            command = (*PLAY, "--record", str(Path(tempfile.mkdtemp()) / "take.wav"))
        ours = seconds([*python, run, *command], args.repeats)
        before = seconds([*python, baseline, *command], args.repeats)
        print(f"| `tuibend {' '.join(shown)}` | {ours:.2f} | {before:.2f} | {before / ours:.1f}x |")


if __name__ == "__main__":
    main()
