"""Start-up time of the commands a performer types, end to end, against what each cost when every command
imported TensorFlow first (the baseline: the same command after ``import tensorflow``) and against bare
Python. Each command runs as a new process, as typed, several times; the median is kept.

Run: ``python bench/startup.py [--repeats 5]``. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = [("--version",), ("--help",), ("models",), ("scenes",), ("paths",), ("info", "choir")]
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
    print(f"bare Python: {bare:.3f} s; target: every command under {TARGET_S:.0f} s\n")
    print("| command | tuibend (s) | with TensorFlow first (s, baseline) | speed-up |")
    print("|---|---|---|---|")
    for command in COMMANDS:
        run = "import sys; from tuibend.cli import main; sys.exit(main(sys.argv[1:]))"
        baseline = "import tensorflow; " + run
        ours = seconds([*python, run, *command], args.repeats)
        before = seconds([*python, baseline, *command], args.repeats)
        print(f"| `tuibend {' '.join(command)}` | {ours:.2f} | {before:.2f} | {before / ours:.1f}x |")


if __name__ == "__main__":
    main()
