"""Audio takes written as they play: a float WAV whose header is kept true every second.

A take is never lost: the samples go to disk as blocks arrive (a tenth of a second later, from the engine's
file writer) and the header's sizes are rewritten each second and on close, so even a killed process leaves a
readable file holding all but the last second. The file is named ``NAME.part`` while recording and renamed on close.
"""

from __future__ import annotations

import collections
import contextlib
import struct
import threading
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
    """Appends mono float32 blocks to ``path`` (``.wav``); :meth:`close` finalises and renames.

    The model thread only queues a block (:meth:`write`: a copy and an append); the engine's file writer thread
    puts what is queued on disk (:meth:`write_pending`), so a disk that stalls delays the take, never the music.
    A disk that fails ends the take, its file a ``.part`` as far as it was written (:func:`recover_take` finishes
    it); one that falls ``backlog_seconds`` behind ends it too, and :meth:`close` still writes what was queued.
    :attr:`failure` says why.
    """

    def __init__(self, path: str | Path, sample_rate: int, sync_seconds: float = 1.0,
                 backlog_seconds: float = 60.0):
        self.path = Path(path)
        if self.path.suffix.lower() != ".wav":
            raise InputError(f"{self.path}: takes are recorded as .wav")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(self.path.name + ".part")
        self.sample_rate = sample_rate
        self.samples = 0  # queued so far (model thread)
        self.written = 0  # of them on disk (file writer)
        self.failure: str | None = None
        self._sync_seconds = sync_seconds
        self._backlog = backlog_seconds
        self._last_sync = time.monotonic()
        self._queue: collections.deque[np.ndarray] = collections.deque()
        self._lock = threading.Lock()  # the file's: the file writer and close, never the model thread
        self._file = open(self.partial, "wb")  # noqa: SIM115 - held open for the whole take
        self._file.write(_header(sample_rate, 1, 0))

    def write(self, block: np.ndarray) -> None:
        """Queues a copy of ``block`` (the model thread's; never waits for the disk)."""
        if self.failure is not None:
            return
        if self.samples + len(block) - self.written > self._backlog * self.sample_rate:
            self.failure = f"take {self.path} stopped: the disk fell {self._backlog:g} s behind"
            return
        self._queue.append(np.array(block, "<f4"))
        self.samples += len(block)

    def write_pending(self) -> None:
        """Writes what is queued, and the header for it each ``sync_seconds`` (the file writer's thread)."""
        with self._lock:
            if self._file.closed or self.failure is not None:
                return
            try:
                self._write_queue()
                if time.monotonic() - self._last_sync >= self._sync_seconds:
                    self._sync()
            except OSError as error:  # a full or broken disk: what reached it stays, the take ends
                self.failure = f"take {self.path} stopped: {error.strerror or error}"
                with contextlib.suppress(OSError):
                    self._file.close()

    def _write_queue(self) -> None:
        while self._queue:
            block = self._queue.popleft()
            self._file.write(block)
            self.written += len(block)

    def sync(self) -> None:
        """Writes what is queued and rewrites the header for it now."""
        with self._lock:
            self._write_queue()
            self._sync()

    def _sync(self) -> None:
        """Rewrites the header for the samples written and pushes everything to disk."""
        self._file.seek(0)
        self._file.write(_header(self.sample_rate, 1, 4 * self.written))
        self._file.seek(0, 2)
        self._file.flush()
        self._last_sync = time.monotonic()

    @property
    def seconds(self) -> float:
        return self.samples / self.sample_rate

    def close(self) -> Path:
        """Writes what is queued, finalises the header and renames the take into place (a take the disk failed
        is left a ``.part`` as far as it was written)."""
        with self._lock:
            if not self._file.closed:
                self._write_queue()
                self._sync()
                self._file.close()
                self.partial.replace(self.path)
        return self.path


STALE_SECONDS = 10.0  # a take being recorded is synced every second: a .part untouched this long is orphaned


def recover_take(partial: Path) -> tuple[Path, float]:
    """A ``.part`` left by a crash or a power cut made whole: its header's sizes set from the samples on
    disk (a torn last sample dropped), renamed into place (beside an existing take of that name, never
    over it). Returns the take and its length in seconds; InputError for a file that is not a tuibend take."""
    partial = Path(partial)
    with open(partial, "r+b") as file:
        header = file.read(HEADER_BYTES)
        if len(header) < HEADER_BYTES or header[:4] != b"RIFF" or header[8:16] != b"WAVEfmt " \
                or header[36:40] != b"data":
            raise InputError(f"{partial}: not a take tuibend recorded (no float WAV header); left as it is")
        _, audio_format, channels, sample_rate, _, block_align, bits = struct.unpack("<IHHIIHH", header[16:36])
        if audio_format != 3 or bits != 32 or channels < 1 or block_align != 4 * channels or sample_rate < 1:
            raise InputError(f"{partial}: not a take tuibend recorded (format {audio_format}, {bits} bits); "
                             "left as it is")
        file.seek(0, 2)
        data_bytes = (file.tell() - HEADER_BYTES) // block_align * block_align
        file.truncate(HEADER_BYTES + data_bytes)
        file.seek(0)
        file.write(_header(sample_rate, channels, data_bytes))
    target = partial.with_name(partial.name.removesuffix(".part"))
    number = 1
    while target.exists():
        target = partial.with_name(f"{partial.name.removesuffix('.wav.part')}-recovered-{number}.wav")
        number += 1
    partial.replace(target)
    return target, data_bytes / block_align / sample_rate


def recover_takes(folder: Path, stale_seconds: float = STALE_SECONDS) -> list[str]:
    """Recovers every orphaned ``.part`` in ``folder`` (one not written for ``stale_seconds``: a take
    still being recorded by a running performance is left alone); one line each, said to the performer."""
    lines = []
    for partial in sorted(Path(folder).glob("*.wav.part")) if Path(folder).is_dir() else []:
        if time.time() - partial.stat().st_mtime < stale_seconds:
            continue
        try:
            take, seconds = recover_take(partial)
        except (InputError, OSError) as error:
            lines.append(f"take not recovered: {error}")
            continue
        lines.append(f"recovered an unfinished take: {take} ({seconds:.1f} s)")
    return lines
