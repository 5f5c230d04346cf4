"""What the pause between blocks costs: reading weights again, and Python's own calls.

Run: ``python bench/pause_costs.py`` (about a minute; Linux, a C compiler). Everything is timed back to back and
one 16 ms block period after the last time (as the engine's model thread runs a block after sleeping), the two
ways taking turns; printed: microseconds (medians) and the paced cost over back to back.

- Memory: each size read whole from an array in 4 KiB pages (numpy's own, where the system gives huge pages
  only on request) and from one in 2 MiB huge pages (as the native kernel's arenas are), by numpy's ``sum`` (the
  memory anchor ``bench/realtime.py`` prints) and by a C loop of vector adds built here for this CPU (``-O2
  -march=native``, streaming as the kernel's panels do).
- Calls: the small steps a block's Python takes around the kernel, in the order timed: a ctypes call into the C
  loop (on 64 floats), a second one, an array's address for ctypes, a numpy multiply in place, a copy, a slice
  written: each on a few hundred samples, so what is timed is the call's own code, not its data.
"""

from __future__ import annotations

import argparse
import ctypes
import mmap
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from tuibend.native import compiler

SIZES_MIB = (0.5, 1.0, 3.6, 9.2)  # half the per-core L2, all of it, the small and the full model's bfloat16 weights
PERIOD = 0.016  # one 256-sample block at 16 kHz
HUGE_PAGE = 2 << 20
SOURCE = r"""
#include <stddef.h>
typedef float v16 __attribute__((vector_size(64)));
/* the sum of n floats (n a multiple of 64), four vector sums so the loads overlap */
float stream_sum(const float *x, size_t n) {
    v16 a = {0}, b = {0}, c = {0}, d = {0};
    for (size_t i = 0; i < n; i += 64) {
        v16 p, q, r, s;
        __builtin_memcpy(&p, x + i, 64); __builtin_memcpy(&q, x + i + 16, 64);
        __builtin_memcpy(&r, x + i + 32, 64); __builtin_memcpy(&s, x + i + 48, 64);
        a += p; b += q; c += r; d += s;
    }
    v16 t = a + b + c + d;
    float total = 0.0f;
    for (int k = 0; k < 16; k++) total += t[k];
    return total;
}
"""


def build(folder: Path) -> ctypes.CDLL:
    """The C loop, compiled for this CPU."""
    cc = compiler()
    if cc is None:
        raise SystemExit("paced_stream: no C compiler (cc)")
    source, library = folder / "stream.c", folder / "stream.so"
    source.write_text(SOURCE)
    subprocess.run([cc, "-O2", "-march=native", "-fPIC", "-shared", "-o", str(library), str(source)], check=True)
    lib = ctypes.CDLL(str(library))
    lib.stream_sum.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.stream_sum.restype = ctypes.c_float
    return lib


def huge_page_copy(values: np.ndarray) -> tuple[np.ndarray, mmap.mmap]:
    """``values`` in memory marked for huge pages before its first touch, on a huge page's boundary (and the
    mapping, which must outlive the array)."""
    mapping = mmap.mmap(-1, values.nbytes + HUGE_PAGE)
    mapping.madvise(mmap.MADV_HUGEPAGE)
    space = np.frombuffer(mapping, np.uint8)
    start = -space.ctypes.data % HUGE_PAGE
    copy = space[start:start + values.nbytes].view(np.float32)
    copy[:] = values
    return copy, mapping


def read_times(lib: ctypes.CDLL, values: np.ndarray, rounds: int) -> dict[tuple[str, str], float]:
    """Median microseconds of one read of ``values``, by each reader, back to back and paced."""
    readers = {"numpy": values.sum, "C loop": lambda: lib.stream_sum(values.ctypes.data, len(values))}
    times: dict[tuple[str, str], list[float]] = {(reader, way): [] for reader in readers
                                                 for way in ("back to back", "paced")}
    for _ in range(rounds):
        for reader, read in readers.items():
            read()
            for _ in range(5):
                started = time.perf_counter()
                read()
                times[reader, "back to back"].append(time.perf_counter() - started)
            for _ in range(5):
                time.sleep(PERIOD)
                started = time.perf_counter()
                read()
                times[reader, "paced"].append(time.perf_counter() - started)
    return {key: float(np.median(value)) * 1e6 for key, value in times.items()}


def call_times(lib: ctypes.CDLL, rounds: int) -> dict[str, tuple[float, float]]:
    """Median microseconds of each small call, back to back and paced (the first call after the pause pays for
    waking too)."""
    samples = np.zeros(256, np.float32)
    address = samples.ctypes.data
    steps = {
        "a ctypes call (the first after the pause)": lambda: lib.stream_sum(address, 64),
        "a second ctypes call": lambda: lib.stream_sum(address, 64),
        "an array's address (.ctypes.data)": lambda: samples.ctypes.data,
        "numpy multiply in place": lambda: np.multiply(samples, 0.5, out=samples),
        "an array copied": samples.copy,
        "a slice written": lambda: samples.__setitem__(slice(0, 64), samples[64:128]),
    }
    times = {way: [] for way in ("back to back", "paced")}
    for _ in range(rounds):
        for way, rows in times.items():
            for _ in range(10):
                if way == "paced":
                    time.sleep(PERIOD)
                marks = [time.perf_counter()]
                for step in steps.values():
                    step()
                    marks.append(time.perf_counter())
                rows.append(np.diff(marks))
    back, paced = (np.median(np.array(rows), axis=0) * 1e6 for rows in times.values())
    return {name: (back[i], paced[i]) for i, name in enumerate(steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="turns of each reader (5 reads each way a turn)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        lib = build(Path(folder))
        print("| size | pages | reader | back to back us | GB/s | paced us | GB/s | paced / back to back |")
        print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for size in SIZES_MIB:
            values = np.random.default_rng(0).standard_normal(int(size * 2**20) // 256 * 64).astype(np.float32)
            huge, _mapping = huge_page_copy(values)
            for pages, array in (("4 KiB", values), ("2 MiB", huge)):
                times = read_times(lib, array, args.rounds)
                for reader in ("numpy", "C loop"):
                    back, paced = times[reader, "back to back"], times[reader, "paced"]
                    rate = array.nbytes / 1e3
                    print(f"| {size} MiB | {pages} | {reader} | {back:.0f} | {rate / back:.1f} | {paced:.0f} "
                          f"| {rate / paced:.1f} | {paced / back:.2f}x |")
        print("\n| call | back to back us | paced us | paced / back to back |")
        print("| --- | ---: | ---: | ---: |")
        calls = call_times(lib, args.rounds)
        for name, (back, paced) in calls.items():
            print(f"| {name} | {back:.1f} | {paced:.1f} | {paced / back:.0f}x |")
        back, paced = (sum(times[way] for times in calls.values()) for way in (0, 1))
        print(f"| all six | {back:.1f} | {paced:.1f} | {paced / back:.0f}x |")


if __name__ == "__main__":
    main()
