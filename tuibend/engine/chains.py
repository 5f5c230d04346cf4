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

import numpy as np

from tuibend.bend.rig import Bend, BendRig
from tuibend.model.decoder import point_widths
from tuibend.model.timbre import ModelStream, TimbreModel

StructureKey = tuple


def structure_key(bends: list[Bend]) -> StructureKey:
    """What a compiled chain depends on: everything but fader and parameter values."""
    return tuple((bend.point, bend.transform, bend.select, bend.seed) for bend in bends)


@dataclass
class Chain:
    """One compiled chain structure: the rig its hook reads, and the stream that runs it."""

    rig: BendRig
    stream: ModelStream


def build_chain(model: TimbreModel, bends: list[Bend], block_frames: int,
                unit_statistics: dict[str, np.ndarray] | None, seed: int) -> Chain:
    """Builds and compiles (by one step on silence) a chain; its state is then cleared."""
    rig = BendRig(bends, point_widths(model.config.decoder), block_frames, unit_statistics)
    stream = model.stream(block_frames, hook=rig.hook, seed=seed)
    floor = np.full(block_frames, -120.0, np.float32)
    stream.step(np.full(block_frames, 220.0, np.float32), floor)
    stream.reset()
    rig.reset()
    return Chain(rig, stream)


class ChainPreparer:
    """Compiles chains on its own thread; the model thread only looks up what is ready."""

    def __init__(self, build: Callable[[list[Bend]], Chain]):
        self._build = build
        self._ready: dict[StructureKey, Chain] = {}
        self._failed: dict[StructureKey, str] = {}
        self._queued: set[StructureKey] = set()
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="tuibend-chains", daemon=True)
        self._thread.start()

    def add(self, key: StructureKey, chain: Chain) -> None:
        self._ready[key] = chain

    def request(self, bends: list[Bend]) -> StructureKey:
        """Queues a structure for compiling (once); returns its key."""
        key = structure_key(bends)
        if key not in self._ready and key not in self._queued:
            self._queued.add(key)
            self._queue.put((key, list(bends)))
        return key

    def ready(self, key: StructureKey) -> Chain | None:
        return self._ready.get(key)

    def failure(self, key: StructureKey) -> str | None:
        return self._failed.get(key)

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
                self._failed[key] = f"{type(error).__name__}: {error}"
            self._queued.discard(key)

    def close(self) -> None:
        self._queue.put((None, None))
