"""A lock-free ring of float32 samples between exactly one writer and one reader.

Each side owns one counter (total samples written, total samples read); the other side only
reads it. Under CPython's GIL an integer attribute store is atomic, so neither side ever waits,
and the audio callback moves samples with two slice copies and no allocation.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """A preallocated single-producer, single-consumer ring of mono samples."""

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self._data = np.zeros(self.capacity, np.float32)
        self.written = 0  # total samples ever written (writer's counter)
        self.read = 0  # total samples ever read (reader's counter)

    @property
    def readable(self) -> int:
        return self.written - self.read

    @property
    def writable(self) -> int:
        return self.capacity - self.readable

    def write(self, samples: np.ndarray) -> int:
        """Copies in as many samples as fit; returns how many."""
        count = min(len(samples), self.writable)
        start = self.written % self.capacity
        first = min(count, self.capacity - start)
        self._data[start:start + first] = samples[:first]
        self._data[:count - first] = samples[first:count]
        self.written += count
        return count

    def read_into(self, out: np.ndarray) -> int:
        """Fills ``out`` from the ring as far as samples are there; returns how many."""
        count = min(len(out), self.readable)
        start = self.read % self.capacity
        first = min(count, self.capacity - start)
        out[:first] = self._data[start:start + first]
        out[first:count] = self._data[:count - first]
        self.read += count
        return count
