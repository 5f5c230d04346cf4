"""Audio takes written as they play: a float WAV whose header is kept true every second.

A take is never lost: the samples go to disk as blocks arrive and the header's sizes are
rewritten each second and on close, so even a killed process leaves a readable file holding
all but the last second. The file is named ``NAME.part`` while recording and renamed on close.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np

from tuibend.errors import InputError

HEADER_BYTES = 44


def _header(sample_rate: int, channels: int, data_bytes: int) -> bytes:
    """RIFF/WAVE header for IEEE float32 samples."""
    block_align = 4 * channels
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 3, channels, sample_rate, sample_rate * block_align,
                                    block_align, 32)
            + b"data" + struct.pack("<I", data_bytes))


class TakeWriter:
    """Appends mono float32 blocks to ``path`` (``.wav``); :meth:`close` finalises and renames."""

    def __init__(self, path: str | Path, sample_rate: int, sync_seconds: float = 1.0):
        self.path = Path(path)
        if self.path.suffix.lower() != ".wav":
            raise InputError(f"{self.path}: takes are recorded as .wav")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(self.path.name + ".part")
        self.sample_rate = sample_rate
        self.samples = 0
        self._sync_seconds = sync_seconds
        self._last_sync = time.monotonic()
        self._file = open(self.partial, "wb")  # noqa: SIM115 - held open for the whole take
        self._file.write(_header(sample_rate, 1, 0))

    def write(self, block: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(block, "<f4").tobytes())
        self.samples += len(block)
        if time.monotonic() - self._last_sync >= self._sync_seconds:
            self.sync()

    def sync(self) -> None:
        """Rewrites the header for the samples so far and pushes everything to disk."""
        self._file.seek(0)
        self._file.write(_header(self.sample_rate, 1, 4 * self.samples))
        self._file.seek(0, 2)
        self._file.flush()
        self._last_sync = time.monotonic()

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate

    def close(self) -> Path:
        """Finalises the header and renames the take into place."""
        if self._file.closed:
            return self.path
        self.sync()
        self._file.close()
        self.partial.replace(self.path)
        return self.path
