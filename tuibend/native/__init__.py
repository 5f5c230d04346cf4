"""The native block kernel: a live block of a model, bends included, in one C call.

TensorFlow's compiled step costs 0.5-1.2 ms a block on one thread, most of it outside the
arithmetic (measured, see the README); :mod:`tuibend.native.stream` runs the same maths in
``block.c``. The kernel is compiled on first use for the machine it runs on (``cc -O3
-march=native``) into a per-user cache, keyed by its source, and loaded with ctypes: nothing is
compiled from a model or scene file, only this package's own source.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

SOURCE = Path(__file__).with_name("block.c")
FLAGS = ("-O3", "-march=native", "-fPIC", "-shared", "-fno-math-errno", "-std=gnu11")


class NativeUnavailable(RuntimeError):
    """The kernel cannot be built or loaded here (no C compiler, or it failed): TensorFlow runs instead."""


def cache_dir() -> Path:
    """``$TUIBEND_NATIVE_CACHE``, else ``$XDG_CACHE_HOME/tuibend/native``, else ``~/.cache/tuibend/native``."""
    if os.environ.get("TUIBEND_NATIVE_CACHE"):
        return Path(os.environ["TUIBEND_NATIVE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tuibend" / "native"


def library_path() -> Path:
    """Where this source, built for this machine, lives: a new source or CPU gets its own build."""
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode() + platform.machine().encode()
                         + _cpu_flags().encode()).hexdigest()[:16]
    return cache_dir() / f"block-{key}.so"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


def build(target: Path) -> None:
    """Compiles ``block.c`` into ``target`` (atomically: a half-written library is never loaded)."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise NativeUnavailable("no C compiler (cc) to build the native kernel: install gcc "
                                "(apt-get install build-essential); TensorFlow runs the model meanwhile")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        workspace = tempfile.TemporaryDirectory(dir=target.parent)
    except OSError as error:
        raise NativeUnavailable(f"the native kernel cannot be built into {target.parent}: {error} "
                                "(set TUIBEND_NATIVE_CACHE to a writable folder)") from error
    with workspace as temporary:
        partial = Path(temporary) / target.name
        try:
            result = subprocess.run([compiler, *FLAGS, "-o", str(partial), str(SOURCE), "-lm"],
                                    capture_output=True, text=True)
        except OSError as error:
            raise NativeUnavailable(f"the C compiler {compiler} could not run: {error}") from error
        if result.returncode:
            raise NativeUnavailable(f"the native kernel did not compile ({compiler}): {result.stderr.strip()[:400]}")
        os.replace(partial, target)
    for stale in target.parent.glob("block-*.so"):  # builds of other sources or CPUs: not needed again here
        if stale != target:
            stale.unlink(missing_ok=True)


class Config(ctypes.Structure):
    _fields_ = [("n_inputs", ctypes.c_int), ("input_is_f0", ctypes.c_int * 2), ("ch", ctypes.c_int),
                ("layers", ctypes.c_int), ("rnn", ctypes.c_int), ("n_harmonics", ctypes.c_int),
                ("n_bands", ctypes.c_int), ("hop", ctypes.c_int), ("block_frames", ctypes.c_int),
                ("reverb_parts", ctypes.c_int), ("bfloat16", ctypes.c_int), ("amp_linear", ctypes.c_int),
                ("sample_rate", ctypes.c_float),
                ("f0_range", ctypes.c_float), ("ld_range", ctypes.c_float), ("noise_bias", ctypes.c_float),
                ("seed", ctypes.c_uint64)]


class BendSpec(ctypes.Structure):
    _fields_ = [("point", ctypes.c_int), ("transform", ctypes.c_int), ("units", ctypes.c_int),
                ("row_proportion", ctypes.c_int), ("row_a", ctypes.c_int), ("row_b", ctypes.c_int),
                ("eligible", ctypes.c_float), ("ranks", ctypes.POINTER(ctypes.c_float)),
                ("permutation", ctypes.POINTER(ctypes.c_int32)), ("seed", ctypes.c_uint64)]


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """The loaded kernel, built first if this machine has no build of this source yet."""
    path = library_path()
    if not path.exists():
        build(path)
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as error:
        raise NativeUnavailable(f"the native kernel at {path} did not load: {error}") from error
    floats = ctypes.POINTER(ctypes.c_float)
    lib.tb_create.restype = ctypes.c_void_p
    lib.tb_create.argtypes = [ctypes.POINTER(Config), ctypes.POINTER(floats), floats, floats, ctypes.c_int,
                              ctypes.POINTER(BendSpec)]
    lib.tb_destroy.argtypes = [ctypes.c_void_p]
    lib.tb_reset.argtypes = [ctypes.c_void_p]
    lib.tb_bfloat16.argtypes = [ctypes.c_void_p]
    lib.tb_continue_from.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.tb_continue_from.restype = ctypes.c_int
    lib.tb_step.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                            ctypes.c_void_p, ctypes.c_void_p]
    lib.tb_step.restype = None
    return lib


def available() -> str | None:
    """None when the kernel is usable here, else why not (one line)."""
    try:
        library()
    except NativeUnavailable as error:
        return str(error)
    return None
