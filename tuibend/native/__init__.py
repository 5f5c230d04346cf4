"""The native block kernel: a live block of a model, bends included, in one C call.

TensorFlow's compiled step costs 0.5-1.2 ms a block on one thread, most of it outside the
arithmetic (measured, see docs/benchmarks.md); :mod:`tuibend.native.stream` runs the same maths in
``block.c``. The package is built with one library per CPU level (:mod:`tuibend.native.variants`:
AVX512-BF16, AVX2/FMA, portable C, which is NEON on ARM) and the fastest this CPU runs is loaded
with ctypes, so a performer's machine needs no compiler. A checkout without built libraries
compiles the same builds on first use into the user's cache, keyed by source, flags and compiler.
Nothing is compiled from a model or scene file, only this package's own source.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.machinery
import os
import platform
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from tuibend.errors import TuibendError
from tuibend.native.variants import COMMON_FLAGS, VARIANTS, digest_macro, source_digest, variants_for
from tuibend.places import user_cache

HERE = Path(__file__).parent
SOURCE = HERE / "block.c"
VARIANT_ENV = "TUIBEND_KERNEL_BUILD"  # names the build to load (tests of each path; a fault to work around)


class NativeUnavailable(TuibendError, RuntimeError):
    """The kernel cannot be built or loaded here (no build for this machine, or it failed): TensorFlow runs."""


def cache_dir() -> Path:
    return user_cache("native")


def packaged(variant: str) -> Path | None:
    """The build the package carries for ``variant``, if it was built with it from this source (a
    checkout whose ``block.c`` changed since its builds compiles it again)."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = HERE / f"_block_{variant}{suffix}"
        if path.is_file():
            return path if built_from(open_library(path)) == source_digest(SOURCE) else None
    return None


def built_from(lib: ctypes.CDLL) -> str:
    """The source digest a library was stamped with ("" for none)."""
    lib.tb_source_digest.restype = ctypes.c_char_p
    return lib.tb_source_digest().decode()


def compile_flags(variant: str) -> tuple[str, ...]:
    return (*COMMON_FLAGS, *VARIANTS[variant][2])


def compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def cached_build(variant: str) -> Path:
    """Where this source's ``variant``, built here by this compiler, lives in the cache."""
    key = hashlib.sha256(" ".join([source_digest(SOURCE), *compile_flags(variant), platform.machine(),
                                   str(compiler())]).encode()).hexdigest()[:16]
    return cache_dir() / f"block-{variant}-{key}.so"


def build(target: Path, variant: str = "portable", cc: str | None = None) -> None:
    """Compiles ``block.c`` as ``variant`` into ``target`` (atomically: a half-written library is never
    loaded), replacing older builds of the same variant beside it."""
    cc = cc or compiler()
    if cc is None:
        raise NativeUnavailable("no C compiler (cc) to build the native kernel and the package carries no build "
                                "for this machine: install gcc or clang; TensorFlow runs the model meanwhile")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        workspace = tempfile.TemporaryDirectory(dir=target.parent)
    except OSError as error:
        raise NativeUnavailable(f"the native kernel cannot be built into {target.parent}: {error} "
                                "(set XDG_CACHE_HOME to a writable folder)") from error
    with workspace as temporary:
        partial = Path(temporary) / target.name
        name, value = digest_macro(SOURCE)
        command = [cc, *compile_flags(variant), f"-D{name}={value}", "-fPIC", "-shared", "-o", str(partial),
                   str(SOURCE), "-lm"]
        try:
            result = subprocess.run(command, capture_output=True, text=True)
        except OSError as error:
            raise NativeUnavailable(f"the C compiler {cc} could not run: {error}") from error
        if result.returncode:
            raise NativeUnavailable(f"the native kernel did not compile ({cc}): {result.stderr.strip()[:400]}")
        os.replace(partial, target)
    for stale in target.parent.glob(f"block-{variant}-*.so"):  # builds of other sources: not needed again
        if stale != target:
            stale.unlink(missing_ok=True)


def locate(variant: str) -> Path:
    """The library of ``variant``: the package's build, else one compiled here (once)."""
    path = packaged(variant)
    if path is None:
        path = cached_build(variant)
        if not path.exists():
            build(path, variant)
    return path


def open_library(path: Path) -> ctypes.CDLL:
    try:
        return ctypes.CDLL(str(path))
    except OSError as error:
        raise NativeUnavailable(f"the native kernel at {path} did not load: {error}") from error


def runnable_variants() -> list[str]:
    """The builds this CPU runs, fastest first (the portable build says what the CPU has)."""
    level = open_library(locate("portable")).tb_cpu_level()
    return [name for name in variants_for(platform.machine()) if VARIANTS[name][1] <= level]


def chosen_variant() -> str:
    """The build to load: ``$TUIBEND_KERNEL_BUILD`` if set (it must run here), else the fastest."""
    runnable = runnable_variants()
    asked = os.environ.get(VARIANT_ENV)
    if asked:
        if asked not in runnable:
            raise NativeUnavailable(f"{VARIANT_ENV}={asked}: this CPU runs {', '.join(runnable)}")
        return asked
    return runnable[0]


class Config(ctypes.Structure):
    _fields_ = [("n_inputs", ctypes.c_int), ("input_is_f0", ctypes.c_int * 2), ("ch", ctypes.c_int),
                ("layers", ctypes.c_int), ("rnn", ctypes.c_int), ("n_harmonics", ctypes.c_int),
                ("n_bands", ctypes.c_int), ("hop", ctypes.c_int), ("block_frames", ctypes.c_int),
                ("reverb_parts", ctypes.c_int), ("bfloat16", ctypes.c_int), ("amp_linear", ctypes.c_int),
                ("int8", ctypes.c_int),
                ("sample_rate", ctypes.c_float),
                ("f0_range", ctypes.c_float), ("ld_range", ctypes.c_float), ("noise_bias", ctypes.c_float),
                ("output_gain", ctypes.c_float), ("seed", ctypes.c_uint64)]


class BendSpec(ctypes.Structure):
    _fields_ = [("point", ctypes.c_int), ("transform", ctypes.c_int), ("units", ctypes.c_int),
                ("row_proportion", ctypes.c_int), ("row_a", ctypes.c_int), ("row_b", ctypes.c_int),
                ("eligible", ctypes.c_float), ("ranks", ctypes.POINTER(ctypes.c_float)),
                ("permutation", ctypes.POINTER(ctypes.c_int32)), ("seed", ctypes.c_uint64)]


class AnalysisConfig(ctypes.Structure):
    _fields_ = [("hop", ctypes.c_int), ("pitch_hop", ctypes.c_int), ("n_fft", ctypes.c_int), ("lead", ctypes.c_int),
                ("kept", ctypes.c_int), ("v3", ctypes.c_int), ("loudness_lag", ctypes.c_int),
                ("pitch_lag", ctypes.c_int), ("low_bin", ctypes.c_int), ("high_bin", ctypes.c_int),
                ("voiced", ctypes.c_float), ("ref_db", ctypes.c_float), ("range_db", ctypes.c_float),
                ("missing_db", ctypes.c_float)]


class LiveConfig(ctypes.Structure):
    _fields_ = [("onset", ctypes.c_int), ("onset_frames", ctypes.c_int), ("yin_min_lag", ctypes.c_int),
                ("yin_max_lag", ctypes.c_int), ("yin_integration", ctypes.c_int), ("yin_threshold", ctypes.c_float),
                ("onset_confidence", ctypes.c_float), ("sample_rate", ctypes.c_float), ("quiet_db", ctypes.c_float),
                ("resting_f0", ctypes.c_float), ("pitch_ratio", ctypes.c_float)]


class Safety(ctypes.Structure):
    _fields_ = [("r", ctypes.c_double), ("last_x", ctypes.c_double), ("last_y", ctypes.c_double),
                ("gain", ctypes.c_double), ("ceiling", ctypes.c_double), ("release_samples", ctypes.c_double)]


class Control(ctypes.Structure):
    _fields_ = [("rows", ctypes.c_int32), ("frames", ctypes.c_int32), ("faders", ctypes.c_int32),
                ("derivations", ctypes.c_int32), ("frame_rate", ctypes.c_double),
                ("fader_rows", ctypes.c_void_p), ("kinds", ctypes.c_void_p), ("sources", ctypes.c_void_p),
                ("derived", ctypes.c_void_p), ("decay_steps", ctypes.c_void_p), ("targets", ctypes.c_void_p),
                ("current", ctypes.c_void_p), ("driven", ctypes.c_void_p), ("memory", ctypes.c_void_p)]


FLOOR_CHUNKS = 20  # block.c's TB_FLOOR_MINIMA: the gate's floor is the quietest of this many chunks
FLOOR_CHUNK_FRAMES = 128  # block.c's TB_FLOOR_CHUNK: the most frames in the gate's 100 ms chunk
HEARD_FRAMES = 512  # block.c's TB_HEARD_FRAMES: the most frames one hear decides


class DynamicsState(ctypes.Structure):
    _fields_ = [("gate_enabled", ctypes.c_int32), ("hold_frames", ctypes.c_int32), ("chunk_frames", ctypes.c_int32),
                ("learning_frames", ctypes.c_int32),
                *[(name, ctypes.c_double) for name in (
                    "threshold_db", "margin_db", "hysteresis_db", "offset_db", "release_db_per_frame", "silence_db",
                    "rise_per_frame", "initial_floor_db", "max_floor_db")],
                ("level_enabled", ctypes.c_int32), ("attack_samples", ctypes.c_int32), ("hop", ctypes.c_int32),
                *[(name, ctypes.c_double) for name in (
                    "sample_rate", "time_constant_s", "limit_db", "headroom_db", "recovery_db_per_s")],
                *[(name, ctypes.c_int32) for name in ("is_open", "below", "chunk_len", "minima_len", "minima_next")],
                ("frames", ctypes.c_int64),
                ("floor_db", ctypes.c_double), ("quietest", ctypes.c_double), ("gain_db", ctypes.c_double),
                ("minima", ctypes.c_double * FLOOR_CHUNKS), ("chunk", ctypes.c_double * FLOOR_CHUNK_FRAMES),
                *[(name, ctypes.c_double) for name in (
                    "level_db", "heard_s", "level_applied", "reduction_db", "ceiling_applied", "last_gain")],
                ("heard", ctypes.c_int32), ("shaped", ctypes.c_int32), ("last_played", ctypes.c_int32),
                ("gains", ctypes.c_float * HEARD_FRAMES), ("played", ctypes.c_uint8 * HEARD_FRAMES)]


ABI_VERSION = 9  # block.c's TB_ABI_VERSION
FIRST_LATE_POINT = 16  # block.c's POINT_FC1: the input stacks are numbered from 0, fc1 and after from here


def check_abi(lib: ctypes.CDLL, path: Path) -> None:
    """Refuses a kernel whose contract differs from this Python side's: its version, the sizes of the
    structs Python fills, the transforms and the derivations (names in id order) and the bend points' numbering."""
    from tuibend.bend.derive import DERIVATIONS
    from tuibend.bend.registry import SPECS

    abi = (ctypes.c_int32 * 11)()
    try:
        lib.tb_abi(abi)
    except AttributeError:
        raise NativeUnavailable(f"the native kernel at {path} states no contract (tb_abi): a build of another "
                                "tuibend; TensorFlow runs the model") from None
    lib.tb_transform_name.restype = ctypes.c_char_p
    lib.tb_derivation_name.restype = ctypes.c_char_p
    kernel = {"version": abi[0], "tb_config size": abi[1], "tb_bend size": abi[2],
              "transforms": [lib.tb_transform_name(i).decode() for i in range(abi[3])], "first late point": abi[4],
              "tb_analysis_config size": abi[5], "tb_safety size": abi[6], "tb_control size": abi[7],
              "derivations": [lib.tb_derivation_name(i).decode() for i in range(abi[8])],
              "tb_live_config size": abi[9], "tb_dynamics size": abi[10]}
    expected = {"version": ABI_VERSION, "tb_config size": ctypes.sizeof(Config),
                "tb_bend size": ctypes.sizeof(BendSpec), "transforms": list(SPECS),
                "first late point": FIRST_LATE_POINT, "tb_analysis_config size": ctypes.sizeof(AnalysisConfig),
                "tb_safety size": ctypes.sizeof(Safety), "tb_control size": ctypes.sizeof(Control),
                "derivations": list(DERIVATIONS), "tb_live_config size": ctypes.sizeof(LiveConfig),
                "tb_dynamics size": ctypes.sizeof(DynamicsState)}
    differs = [f"{key} {kernel[key]} (expected {expected[key]})" for key in expected if kernel[key] != expected[key]]
    if differs:
        raise NativeUnavailable(f"the native kernel at {path} does not match this tuibend: {'; '.join(differs)}; "
                                "TensorFlow runs the model")


@lru_cache(maxsize=1)
def library() -> ctypes.CDLL:
    """The loaded kernel: the fastest build this CPU runs (``lib.build`` names it)."""
    variant = chosen_variant()
    path = locate(variant)
    lib = open_library(path)
    check_abi(lib, path)
    lib.build = variant
    lib.amx = bool(lib.tb_amx())  # bfloat16 layers and CREPE in AMX tiles
    floats = ctypes.POINTER(ctypes.c_float)
    lib.tb_create.restype = ctypes.c_void_p
    lib.tb_create.argtypes = [ctypes.POINTER(Config), ctypes.POINTER(floats), floats, floats, ctypes.c_int,
                              ctypes.POINTER(BendSpec)]
    lib.tb_destroy.argtypes = [ctypes.c_void_p]
    lib.tb_reset.argtypes = [ctypes.c_void_p]
    lib.tb_bfloat16.argtypes = [ctypes.c_void_p]
    lib.tb_int8.argtypes = [ctypes.c_void_p]
    lib.tb_threads.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.tb_threads.restype = ctypes.c_int
    lib.tb_continue_from.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.tb_continue_from.restype = ctypes.c_int
    lib.tb_step.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                            ctypes.c_void_p, ctypes.c_void_p]
    lib.tb_step.restype = None
    lib.tb_crepe_create.restype = ctypes.c_void_p
    lib.tb_crepe_create.argtypes = [ctypes.POINTER(floats), ctypes.c_int, ctypes.c_int]
    lib.tb_crepe_destroy.argtypes = [ctypes.c_void_p]
    lib.tb_crepe_mode.argtypes = [ctypes.c_void_p]
    lib.tb_crepe_activation.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.tb_crepe_activation.restype = None
    lib.tb_crepe_pitch.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                   ctypes.c_void_p, ctypes.c_void_p]
    lib.tb_crepe_pitch.restype = None
    lib.tb_analysis_create.restype = ctypes.c_void_p
    lib.tb_analysis_create.argtypes = [ctypes.POINTER(AnalysisConfig), ctypes.POINTER(LiveConfig), ctypes.c_void_p,
                                       ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.tb_analysis_destroy.argtypes = [ctypes.c_void_p]
    lib.tb_analysis_reset.argtypes = [ctypes.c_void_p]
    lib.tb_analysis_process.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                        ctypes.c_void_p, ctypes.c_void_p]
    lib.tb_analysis_process.restype = ctypes.c_int
    lib.tb_analysis_live.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                     *[ctypes.c_void_p] * 5]
    lib.tb_analysis_live.restype = ctypes.c_int
    lib.tb_safety_process.argtypes = [ctypes.POINTER(Safety), ctypes.c_void_p, ctypes.c_int, ctypes.c_float,
                                      ctypes.c_void_p]
    lib.tb_safety_process.restype = ctypes.c_int
    state = ctypes.POINTER(DynamicsState)
    lib.tb_dynamics_hear.argtypes = [state, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.tb_dynamics_hear.restype = ctypes.c_int
    lib.tb_dynamics_shape.argtypes = [state, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                      ctypes.c_void_p]
    lib.tb_dynamics_shape.restype = None
    lib.tb_control_block.argtypes = [ctypes.POINTER(Control), ctypes.c_double, ctypes.c_void_p]
    lib.tb_control_block.restype = None
    return lib


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system states one): how many threads a
    render's blocks and a file's analysis share by default."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def available() -> str | None:
    """None when the kernel is usable here, else why not (one line)."""
    try:
        library()
    except NativeUnavailable as error:
        return str(error)
    return None


def choose(kernel: str) -> tuple[str, str | None]:
    """What renders for ``--kernel`` auto, native or tensorflow: "native" or "tensorflow", with why the native
    kernel does not where auto falls back (None otherwise). An explicit "native" that cannot load raises why."""
    if kernel == "tensorflow":
        return kernel, None
    reason = available()
    if reason is None:
        return "native", None
    if kernel == "native":
        raise NativeUnavailable(f"--kernel native: {reason}")
    return "tensorflow", reason
