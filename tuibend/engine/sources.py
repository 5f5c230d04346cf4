"""What feeds the model: a prepared file with transport, or live input analysed as it arrives."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuibend.pitch.analysis import Features, Gate, StreamingAnalyzer


@dataclass
class Block:
    """One block of model input: per-frame f0, loudness and confidence, and the dry samples."""

    f0_hz: np.ndarray
    loudness_db: np.ndarray
    confidence: np.ndarray
    dry: np.ndarray


class FilePlayer:
    """A prepared file (audio and its adjusted analysis) with play, pause, seek and loop.

    ``play``, ``pause`` and ``seek`` may be called from any thread; the model thread applies a
    seek at its next block. While paused the model hears silence (its loudness floor at the last
    pitch), so its sound and reverb die away naturally instead of stopping dead.
    """

    def __init__(self, name: str, audio: np.ndarray, features: Features, hop: int, floor_db: float,
                 loop: bool = True):
        self.name = name
        self.audio = np.asarray(audio, np.float32)
        self.features = features
        self.hop = hop
        self.floor_db = floor_db
        self.loop = loop
        self.playing = True
        self.position = 0  # frames (model thread)
        self._seek_to: int | None = None

    @property
    def frames(self) -> int:
        return len(self.features)

    @property
    def seconds(self) -> float:
        return self.frames / self.features.frame_rate

    @property
    def position_seconds(self) -> float:
        return self.position / self.features.frame_rate

    def play(self) -> None:
        self.playing = True

    def pause(self) -> None:
        self.playing = False

    def seek(self, seconds: float) -> None:
        self._seek_to = int(np.clip(round(seconds * self.features.frame_rate), 0, max(0, self.frames - 1)))

    def next_block(self, frames: int) -> Block:
        if self._seek_to is not None:
            self.position, self._seek_to = self._seek_to, None
        if not self.playing:
            held = self.features.f0_hz[max(0, self.position - 1)]
            return Block(np.full(frames, held, np.float32), np.full(frames, self.floor_db, np.float32),
                         np.zeros(frames, np.float32), np.zeros(frames * self.hop, np.float32))
        indices = self.position + np.arange(frames)
        if self.loop:
            indices %= self.frames
        past_end = indices >= self.frames
        indices = np.minimum(indices, self.frames - 1)
        loudness = np.where(past_end, self.floor_db, self.features.loudness_db[indices]).astype(np.float32)
        samples = (indices[:, None] * self.hop + np.arange(self.hop)).reshape(-1)
        dry = np.where(np.repeat(past_end, self.hop), 0.0, self.audio[np.minimum(samples, len(self.audio) - 1)])
        self.position += frames
        if self.loop:
            self.position %= self.frames
        elif self.position >= self.frames:
            self.position, self.playing = 0, False  # ran once: back to the start, paused
        return Block(self.features.f0_hz[indices], loudness, self.features.confidence[indices], dry.astype(np.float32))


class LiveAnalysis:
    """Live input to model input: streaming pitch and loudness, unvoiced frames holding the last
    pitch, pitch shift.

    Unvoiced frames are not made quieter here (the offline gate does that): confidence arrives
    with the pitch, a tracker's look-ahead later than the loudness, so attenuating by it would hold
    every onset back by the pitch lag (36 ms with CREPE) instead of the loudness lag (4 ms).
    """

    def __init__(self, analyzer: StreamingAnalyzer, pitch_shift_semitones: float = 0.0,
                 resting_f0_hz: float | None = None):
        self.analyzer = analyzer
        self.pitch_ratio = 2.0 ** (pitch_shift_semitones / 12.0)
        # Before the first voiced frame the model hears this pitch (its training data's mean), not the
        # tracker's guess on silence: a first note then speaks as early as later ones (held at the last
        # note's pitch), instead of after a scoop from wherever the tracker wandered.
        self.resting_f0_hz = resting_f0_hz
        self._reset_gate()

    def _reset_gate(self) -> None:
        resting = None if self.resting_f0_hz is None else self.resting_f0_hz / self.pitch_ratio
        self.gate = Gate(self.analyzer.tracker.voiced_threshold, attenuation_db=0.0, resting_f0_hz=resting)

    @property
    def latency_ms(self) -> dict[str, float]:
        return self.analyzer.latency_ms

    def reset(self) -> None:
        self.analyzer.reset()
        self._reset_gate()

    def process(self, samples: np.ndarray) -> Block:
        features = self.gate.apply(self.analyzer.process(samples))
        f0 = features.f0_hz * self.pitch_ratio
        return Block(f0.astype(np.float32), features.loudness_db, features.confidence, samples)
