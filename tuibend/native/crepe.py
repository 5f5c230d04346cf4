"""CREPE in the native kernel: the live pitch analysis in one C call per frame.

The same network as :class:`tuibend.pitch.crepe.Crepe` (its float32 activations within 1e-5 of it),
computed by ``block.c``'s convolution tiles: float32 vectors, or bfloat16 pairs with float32 sums where
the CPU has AVX512-BF16, in AMX tiles where it has those too (Intel Sapphire Rapids and later: a frame
about six times faster than float32) and in vectors elsewhere (AMD Zen 4: 1.8 times; measured,
docs/benchmarks.md). Weights come from the same files, loaded by the same checks.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np

from tuibend.native import NativeUnavailable, available_cores, choose, library
from tuibend.pitch.crepe_format import CAPACITIES, FRAME_SIZE, N_BINS, load_npz_weights, search_bins
from tuibend.places import crepe_weights

_LAYER_WEIGHTS = ("kernel", "bias", "gamma", "beta", "mean", "variance")
# tb_crepe_create's precisions: float32, bfloat16 in vectors, the faster bfloat16, and that with 8-bit first layers
FLOAT32, VECTORS, FASTEST, EIGHT_BIT = 0, 1, 2, 3
RUNS_FLOAT32, RUNS_VECTORS, RUNS_TILES, RUNS_EIGHT_BIT = 0, 1, 2, 3  # what tb_crepe_mode answers
PRECISIONS = ("float32", "bfloat16", "int8")
SHARE_FRAMES = 64  # the fewest frames worth a thread of their own (a file's batch: a thousand; a live block: 1-2)


def weight_order() -> list[str]:
    """CREPE's weight names in the order ``tb_crepe_create`` reads them."""
    return [f"conv{layer}/{name}" for layer in range(1, 7) for name in _LAYER_WEIGHTS] + [
        "classifier/kernel", "classifier/bias"]


class NativeCrepe:
    """A CREPE network in the kernel. ``precision="bfloat16"`` asks for bfloat16 convolutions where they are
    the faster: in AMX tiles where the CPU has them, in vectors where its dot products run at twice float32's
    rate (AMD's), float32 elsewhere; ``vectors`` asks for bfloat16 in vectors wherever the build has AVX512-BF16
    (to compare the paths). ``precision="int8"`` asks for that, and where it runs bfloat16 vectors on a CPU with
    AVX512-VNNI, the first two convolutions (nine tenths of a tiny frame's multiply-adds), the last and the
    classifier in 8 bits: each column of their kernels scaled to its largest magnitude, their inputs to each
    frame's range (activations within 0.02 of float32's on the reference frames, against 0.003 for bfloat16; a
    frame 0.16 against 0.30 ms on AMD's Zen 4; measured). :attr:`precision` says which
    runs, :attr:`tiles` whether in AMX tiles.
    ``threads``: how many threads share a large batch of frames (a file's analysis), each on a network of its
    own made alike: the same estimates to the bit, in a fraction of the time."""

    def __init__(self, capacity: str = "tiny", weights: dict[str, np.ndarray] | None = None,
                 precision: str = "float32", vectors: bool = False, threads: int = 1):
        if capacity not in CAPACITIES:
            raise ValueError(f"unknown CREPE capacity {capacity!r}: use one of {', '.join(CAPACITIES)}")
        self._lib = library()
        self.capacity = capacity
        if weights is None:
            weights = load_npz_weights(crepe_weights(capacity), capacity)
        keep = [np.ascontiguousarray(weights[name], np.float32) for name in weight_order()]
        floats = ctypes.POINTER(ctypes.c_float)
        pointers = (floats * len(keep))(*(array.ctypes.data_as(floats) for array in keep))
        if precision not in PRECISIONS:
            raise ValueError(f"unknown CREPE precision {precision!r}: use one of {', '.join(PRECISIONS)}")
        asked = {"float32": FLOAT32, "bfloat16": VECTORS if vectors else FASTEST, "int8": EIGHT_BIT}[precision]
        self._handles: list[ctypes.c_void_p] = []  # one network per thread, the caller's first
        for _ in range(max(1, threads)):
            handle = self._lib.tb_crepe_create(pointers, CAPACITIES[capacity], asked)
            if not handle:
                raise NativeUnavailable(f"the native kernel could not hold CREPE {capacity} (out of memory)")
            self._handles.append(ctypes.c_void_p(handle))
        self._handle = self._handles[0]
        mode = self._lib.tb_crepe_mode(self._handle)
        self.precision = {RUNS_FLOAT32: "float32", RUNS_EIGHT_BIT: "int8"}.get(mode, "bfloat16")
        self.tiles = mode == RUNS_TILES
        self.threads = len(self._handles)

    def __del__(self):
        for handle in getattr(self, "_handles", ()):
            self._lib.tb_crepe_destroy(handle)
        self._handles = []

    def activation(self, frames) -> np.ndarray:
        """Activations [n, 360] of normalised 1024-sample frames [n, 1024]."""
        frames = np.ascontiguousarray(np.asarray(frames, np.float32).reshape(-1, FRAME_SIZE))
        out = np.empty((len(frames), N_BINS), np.float32)
        if len(frames):
            self._lib.tb_crepe_activation(self._handle, frames.ctypes.data, len(frames), out.ctypes.data)
        return out

    def estimate(self, frames: np.ndarray, fmin: float = 50.0, fmax: float = 2006.0) -> tuple[np.ndarray, np.ndarray]:
        """f0 (Hz) and confidence of raw 1024-sample frames [n, 1024]: normalised, the network and
        :func:`~tuibend.pitch.crepe_format.decode` in one call; a large batch shared among the threads."""
        frames = np.ascontiguousarray(np.asarray(frames, np.float32).reshape(-1, FRAME_SIZE))
        f0, confidence = np.empty(len(frames), np.float32), np.empty(len(frames), np.float32)
        bins = search_bins(fmin, fmax)
        shares = max(1, min(self.threads, len(frames) // SHARE_FRAMES))
        bounds = [len(frames) * share // shares for share in range(shares + 1)]
        if shares == 1:
            self._pitch(self._handle, frames, bins, f0, confidence, 0, len(frames))
            return f0, confidence
        with ThreadPoolExecutor(shares - 1) as pool:  # the kernel's calls let go of the interpreter
            helped = [pool.submit(self._pitch, handle, frames, bins, f0, confidence, begin, end)
                      for handle, begin, end in zip(self._handles[1:], bounds[1:-1], bounds[2:], strict=False)]
            self._pitch(self._handle, frames, bins, f0, confidence, 0, bounds[1])
            for done in helped:
                done.result()
        return f0, confidence

    def _pitch(self, handle: ctypes.c_void_p, frames: np.ndarray, bins: tuple[int, int], f0: np.ndarray,
               confidence: np.ndarray, begin: int, end: int) -> None:
        """Estimates of frames [begin, end) on one network, into the same rows of f0 and confidence."""
        if end > begin:
            self._lib.tb_crepe_pitch(handle, frames[begin:].ctypes.data, end - begin, *bins,
                                     f0[begin:].ctypes.data, confidence[begin:].ctypes.data)


def file_crepe(kernel: str, threads: int | None = None) -> Callable[[str], NativeCrepe] | None:
    """What makes the CREPE network of a file's analysis where ``kernel`` (as ``--kernel``) runs the model: the
    native kernel's in float32 (TensorFlow's features within float rounding, several times faster, without
    TensorFlow), its batches shared among ``threads`` (default: every core this process may use), or None for
    TensorFlow's."""
    if choose(kernel)[0] != "native":
        return None
    return partial(NativeCrepe, threads=available_cores() if threads is None else threads)
