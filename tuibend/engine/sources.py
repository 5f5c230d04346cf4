"""What feeds the model: a prepared file with transport, live input analysed as it arrives, or a keyboard."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuibend.keyboard import KeyboardVoice
from tuibend.pitch.analysis import Features, StreamingAnalyzer


@dataclass
class Block:
    """One block of model input: per-frame f0, loudness and confidence, the dry samples, and the
    player's own loudness (before any map into the model's range: what the noise gate listens to) and
    pitch (what is sent out as MIDI notes)."""

    f0_hz: np.ndarray
    loudness_db: np.ndarray
    confidence: np.ndarray
    dry: np.ndarray
    level_db: np.ndarray
    pitch_hz: np.ndarray | None = None  # the player's own pitch (before any shift into the model's range)


class FilePlayer:
    """A prepared file (audio and its adjusted analysis) with play, pause, seek and loop.

    ``play``, ``pause`` and ``seek`` may be called from any thread; the model thread applies a
    seek at its next block. While paused the model hears silence (its loudness floor at the last
    pitch), so its sound and reverb die away naturally instead of stopping dead.
    """

    low_latency = False  # a file may queue blocks ahead: nobody hears when it was asked for

    def __init__(self, name: str, audio: np.ndarray, features: Features, hop: int, floor_db: float,
                 loop: bool = True, makeup_db: float = 0.0, levels_db: np.ndarray | None = None,
                 pitches_hz: np.ndarray | None = None):
        """``features``: fitted to the model; ``levels_db`` and ``pitches_hz``: the file's own loudness and
        pitch per frame (default: the features'); ``makeup_db``: the output gain that undoes the loudness
        map's shift (a first guess)."""
        self.name = name
        self.makeup_db = makeup_db
        self.levels_db = np.asarray(features.loudness_db if levels_db is None else levels_db, np.float32)
        self.pitches_hz = np.asarray(features.f0_hz if pitches_hz is None else pitches_hz, np.float32)
        self.audio = np.asarray(audio, np.float32)
        self.features = features
        self.hop = hop
        self.floor_db = floor_db
        self.loop = loop
        self.playing = True
        self.position = 0  # frames (model thread)
        self._seek_to: int | None = None
        # A block inside the file is slices of these (views: the engine only reads a block), a dozen
        # interpreter steps where gathering it costs as many numpy calls, each paid for in caches gone cold
        # between blocks; a block across the end or the loop point is gathered.
        self._rows = tuple(np.ascontiguousarray(row, np.float32) for row in (
            features.f0_hz, features.loudness_db, features.confidence, self.levels_db, self.pitches_hz))
        self._sliceable = min(self.frames, len(self.audio) // hop)

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
            silent = np.full(frames, self.floor_db, np.float32)
            return Block(np.full(frames, held, np.float32), silent, np.zeros(frames, np.float32),
                         np.zeros(frames * self.hop, np.float32), silent)
        start, end = self.position, self.position + frames
        f0, loudness, confidence, levels, pitches = self._rows
        if end <= self._sliceable:
            block = Block(f0[start:end], loudness[start:end], confidence[start:end],
                          self.audio[start * self.hop:end * self.hop], levels[start:end], pitches[start:end])
        else:
            indices = np.arange(start, end)
            if self.loop:
                indices %= self.frames
            past_end = indices >= self.frames
            indices = np.minimum(indices, self.frames - 1)
            samples = (indices[:, None] * self.hop + np.arange(self.hop)).reshape(-1)
            dry = np.where(np.repeat(past_end, self.hop), 0.0, self.audio[np.minimum(samples, len(self.audio) - 1)])
            block = Block(f0[indices], np.where(past_end, self.floor_db, loudness[indices]).astype(np.float32),
                          confidence[indices], dry.astype(np.float32),
                          np.where(past_end, self.floor_db, levels[indices]).astype(np.float32), pitches[indices])
        self.position = end % self.frames if self.loop else end
        if self.position >= self.frames:
            self.position, self.playing = 0, False  # ran once: back to the start, paused
        return block


class LiveAnalysis:
    """Live input to model input (:class:`~tuibend.pitch.analysis.LiveFeatures`, in the kernel where the analyzer
    is the kernel's), its pitch from a keyboard's notes where one plays."""

    low_latency = True

    def __init__(self, analyzer: StreamingAnalyzer, pitch_shift_semitones: float = 0.0,
                 resting_f0_hz: float | None = None, onset_pitch: bool = True, keyboard: KeyboardVoice | None = None):
        """``keyboard``: the pitch comes from its notes (the voice's loudness still drives the model)."""
        self.analyzer = analyzer
        self.keyboard = keyboard
        self.makeup_db = 0.0  # the live loudness is not mapped: nothing to make up
        self.pitch_ratio = 2.0 ** (pitch_shift_semitones / 12.0)
        # Before the first voiced frame the model hears this pitch (its training data's mean), not the
        # tracker's guess on silence: a first note then speaks as early as later ones (held at the last
        # note's pitch), instead of after a scoop from wherever the tracker wandered.
        self.resting_f0_hz = resting_f0_hz
        self.features = analyzer.live_features(resting_f0_hz, self.pitch_ratio, onset_pitch)

    @property
    def latency_ms(self) -> dict[str, float]:
        return self.analyzer.latency_ms

    def reset(self) -> None:
        self.features.reset()

    def process(self, samples: np.ndarray) -> Block:
        frames = self.features.process(samples)
        f0, confidence = frames.f0_hz, frames.confidence
        if self.keyboard is not None:  # sing the rhythm and the breath, play the notes
            f0, _, _ = self.keyboard.render(len(f0))
            f0, confidence = f0.astype(np.float32), np.ones_like(confidence)
        return Block(f0, frames.loudness_db, confidence, frames.dry, frames.loudness_db, frames.pitch_hz)


class KeyboardSource:
    """The model played from a keyboard (:class:`~tuibend.keyboard.KeyboardVoice`): no audio in, and the
    output kept as close behind a key as a live input's."""

    low_latency = True
    makeup_db = 0.0

    def __init__(self, voice: KeyboardVoice, hop: int):
        self.voice = voice
        self.hop = hop
        self.latency_ms = {"loudness": 0.0, "pitch": 0.0}

    def reset(self) -> None:
        self.voice.reset()

    def next_block(self, frames: int) -> Block:
        f0, loudness, confidence = self.voice.render(frames)
        return Block(f0, loudness, confidence, np.zeros(frames * self.hop, np.float32), loudness, f0)
