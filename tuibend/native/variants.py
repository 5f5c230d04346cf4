"""The native kernel's builds, one per CPU level, fastest first: plain data, read by ``setup.py`` too.

A package is built once for many machines, so the kernel is never compiled with ``-march=native``:
each build targets one level and the fastest one this CPU can run is loaded at run time (the
portable build's ``tb_cpu_level`` says which). ``level`` is what ``tb_cpu_level`` must report for a
build to run here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

# Flags every build shares (the maths needs no errno from libm; gnu11 for the vector extensions; POSIX threads
# for renders that share a block among cores).
COMMON_FLAGS = ("-O3", "-fno-math-errno", "-std=gnu11", "-pthread")

# name -> (machines it is built for, the level it needs, its flags)
VARIANTS: dict[str, tuple[tuple[str, ...], int, tuple[str, ...]]] = {
    "avx512bf16": (("x86_64", "amd64"), 2, ("-march=x86-64-v4", "-mavx512bf16", "-mtune=generic")),
    "avx2": (("x86_64", "amd64"), 1, ("-march=x86-64-v3", "-mtune=generic")),
    # Any machine: SSE2 on x86-64, NEON on aarch64 (both baseline), the compiler's vectors elsewhere.
    "portable": ((), 0, ()),
}


def variants_for(machine: str) -> list[str]:
    """The builds made for a machine (``platform.machine()``), fastest first."""
    machine = machine.lower()
    return [name for name, (machines, _, _) in VARIANTS.items() if not machines or machine in machines]


def source_digest(source: Path) -> str:
    """What a build is stamped with (``-DTB_SOURCE_DIGEST``): a build of another source is never loaded."""
    return hashlib.sha256(Path(source).read_bytes()).hexdigest()[:16]


def digest_macro(source: Path) -> tuple[str, str]:
    return "TB_SOURCE_DIGEST", f'"{source_digest(source)}"'
