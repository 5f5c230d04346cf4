"""Compiled chains, prepared off the model thread and swapped in between two blocks.

A chain's structure (which transform at which point, on which units) shapes the compiled
graph; its faders and parameters are only values. So each structure gets one :class:`Chain`
(a bend rig and a model stream, compiled once, kept for the performance), and a scene recall
with a known structure costs nothing. A new structure is compiled on the preparer thread while
the old chain keeps playing.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from tuibend.bend.registry import Bend, StructureKey, structure_key
from tuibend.bend.rig import BendRig, FillMaker, numpy_fill
from tuibend.engine.errors import EngineError
from tuibend.model.layout import point_widths
from tuibend.native.control import KernelFill
from tuibend.native.stream import NativeStream

if TYPE_CHECKING:
    from tuibend.model.store import ModelFile
    from tuibend.model.timbre import TimbreModel

# TensorFlow never frees an XLA-compiled function: each compiled chain keeps about 230 memory maps
# (measured), and Linux's default vm.max_map_count of 65530 holds about 280 of them. A new chain is
# refused, with a message, while fewer than this many maps are left (room for a chain or two and
# whatever else the process maps), instead of the process aborting.
MAPS_RESERVE = 800


def map_headroom() -> int | None:
    """Memory maps this process may still make (Linux), or None where that cannot be read."""
    try:
        limit = int(Path("/proc/sys/vm/max_map_count").read_text())
        with open("/proc/self/maps", "rb") as maps:
            used = sum(1 for _ in maps)
    except (OSError, ValueError):
        return None
    return limit - used


class NoRoomForChain(EngineError):
    """Too few memory maps left to compile another chain: may clear up (another process ends)."""


class LiveStream(Protocol):
    """What the engine asks of a block renderer: the native kernel's :class:`NativeStream` (the live path)
    and TensorFlow's :class:`ModelStream` (its reference, and the path where the kernel cannot load)."""

    block_frames: int
    block_samples: int
    bfloat16: bool  # whether the layers run in bfloat16

    def step(self, f0_hz, loudness_db, noise=None) -> np.ndarray:
        """F frames of f0 and loudness in, F * hop samples out, every state carried to the next block."""

    def reset(self) -> None:
        """Silence: every state back to where a new stream starts."""

    def continue_from(self, other: LiveStream) -> None:
        """Takes over another stream's state (same model and block size): a chain swapped without a seam."""


@dataclass
class Chain:
    """One compiled chain structure: the rig its hook (or the native kernel) reads, the stream that runs it, and
    what fills its controller's block values (the kernel beside its native stream, numpy beside TensorFlow's)."""

    rig: BendRig
    stream: LiveStream
    fill: FillMaker = numpy_fill


def build_chain(model: TimbreModel | ModelFile, bends: list[Bend], block_frames: int,
                unit_statistics: dict[str, np.ndarray] | None, seed: int, native: bool = False,
                bfloat16: bool = False) -> Chain:
    """Builds and compiles (by one step on silence) a chain; its state is then cleared.

    ``native``: the chain runs in the native kernel (no TensorFlow graph, no memory maps kept), its
    layers in bfloat16 where the CPU has it and ``bfloat16`` asks; otherwise ``model`` is a
    :class:`TimbreModel` (TensorFlow's graph)."""
    widths = point_widths(model.config.decoder)
    if native:
        rig = BendRig(bends, widths, block_frames, unit_statistics, graph=False)
        stream = NativeStream(model, rig, block_frames, seed, bfloat16)
    else:
        headroom = map_headroom()
        if headroom is not None and headroom < MAPS_RESERVE:
            raise NoRoomForChain(f"no room to compile another chain structure in this process ({headroom} memory "
                                 f"maps left; TensorFlow keeps every compiled chain): recall a scene already "
                                 f"played, or restart tuibend")
        rig = BendRig(bends, widths, block_frames, unit_statistics)
        stream = model.stream(block_frames, hook=rig.hook, seed=seed)
    floor = np.full(block_frames, -120.0, np.float32)
    stream.step(np.full(block_frames, 220.0, np.float32), floor)
    stream.reset()
    rig.reset()
    return Chain(rig, stream, KernelFill if native else numpy_fill)


class ChainPreparer:
    """Compiles chains on its own thread; the model thread only looks up what is ready."""

    def __init__(self, build: Callable[[list[Bend]], Chain]):
        self._build = build
        self._ready: dict[StructureKey, Chain] = {}
        self._failed: dict[StructureKey, Exception] = {}
        self._queued: set[StructureKey] = set()
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="tuibend-chains", daemon=True)
        self._thread.start()

    def add(self, key: StructureKey, chain: Chain) -> None:
        self._ready[key] = chain

    def fail(self, key: StructureKey, error: Exception) -> None:
        """A structure that could not be built before the music started: its recall is refused with this."""
        self._failed[key] = error

    def request(self, bends: list[Bend]) -> StructureKey:
        """Queues a structure for compiling (once; again after a failure for want of room, which may
        have cleared: other failures would only repeat their tracing mid-performance); returns its key."""
        key = structure_key(bends)
        if isinstance(self._failed.get(key), NoRoomForChain):
            self._failed.pop(key, None)  # a new attempt: the last one's failure no longer stands
        if key not in self._ready and key not in self._queued and key not in self._failed:
            self._queued.add(key)
            self._queue.put((key, list(bends)))
        return key

    def ready(self, key: StructureKey) -> Chain | None:
        return self._ready.get(key)

    def failure(self, key: StructureKey) -> str | None:
        error = self._failed.get(key)
        return None if error is None else f"{type(error).__name__}: {error}"

    @property
    def busy(self) -> bool:
        return bool(self._queued)

    def _work(self) -> None:
        while True:
            key, bends = self._queue.get()
            if key is None:
                return
            try:
                self._ready[key] = self._build(bends)
            except Exception as error:  # reported to the interface, the performance goes on
                self._failed[key] = error
            self._queued.discard(key)

    def close(self) -> None:
        self._queue.put((None, None))
