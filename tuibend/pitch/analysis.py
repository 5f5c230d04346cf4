"""Features for the model: f0, confidence and loudness at the model's frame rate.

:func:`analyze_audio` does a whole signal; :class:`StreamingAnalyzer` does the same work
block by block for live input and emits, for output frame j, loudness of frame
``j - loudness_lag`` and pitch of frame ``j - pitch_lag``: the offline analysis delayed by
fixed, documented lags (the pitch lag is the tracker's look-ahead, plus the wait for the next
estimate when the tracker's hop is coarser than the frames). Loudness, which carries the
onsets, is not held back by the slower pitch.

The live loudness (v3) does not wait for the last few samples of each centred window: a Hann
window gives them almost no weight (the last 128 of 512 hold 3.8 % of its energy), so the frame
is computed without them, its level restored by that share, two frames (8 ms) sooner. A steady
sound reads the same (0.06 dB median difference on a sung phrase); an onset in those last samples
reaches the next frame instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tuibend.dsp.flavours import LOUDNESS_FLAVOURS
from tuibend.dsp.plain import FrameLoudness, loudness_padding
from tuibend.pitch.trackers import Tracker
from tuibend.pitch.yin import Yin

SAMPLE_RATE = 16000
FRAME_RATE = 250
# The share of a loudness window's energy its live frames may do without, in whole hops at its newest end.
LIVE_LOUDNESS_MISSING_ENERGY = 0.04


@dataclass
class Features:
    """Per-frame features at ``frame_rate``: f0 (Hz), confidence (0..1) and loudness (dB)."""

    f0_hz: np.ndarray
    confidence: np.ndarray
    loudness_db: np.ndarray
    frame_rate: int = FRAME_RATE

    def __len__(self) -> int:
        return len(self.f0_hz)

    def __getitem__(self, index: slice) -> Features:
        return Features(self.f0_hz[index], self.confidence[index], self.loudness_db[index], self.frame_rate)

    @classmethod
    def concatenate(cls, parts: list[Features], frame_rate: int = FRAME_RATE) -> Features:
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) if parts else np.zeros(0, np.float32)
                     for name in ("f0_hz", "confidence", "loudness_db")), frame_rate=frame_rate)


def _cents(f0_hz: np.ndarray) -> np.ndarray:
    return 1200.0 * np.log2(np.maximum(f0_hz, 1e-3) / 10.0)


def interpolate_estimates(positions: np.ndarray, hop: int, f0_hz: np.ndarray, confidence: np.ndarray,
                          first_index: int = 0, voiced_threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pitch at sample ``positions`` from estimates every ``hop`` samples (linear in cents).

    Between a voiced estimate and an unvoiced one (``voiced_threshold`` given), the pitch is the
    voiced one's: an unvoiced estimate's f0 is the tracker's guess on noise or silence (CREPE reads
    silence as ~2 kHz), and a glide towards it would be heard wherever the interpolated confidence
    still counts as voiced, at the edges of notes."""
    centres = (first_index + np.arange(len(f0_hz))) * hop
    cents = _cents(f0_hz)
    interpolated = np.interp(positions, centres, cents)
    if voiced_threshold is not None and len(centres) > 1:
        voiced = confidence >= voiced_threshold
        right = np.clip(np.searchsorted(centres, positions, side="right"), 1, len(centres) - 1)
        left = right - 1
        mixed = (voiced[left] != voiced[right]) & (positions > centres[left]) & (positions < centres[right])
        interpolated = np.where(mixed, np.where(voiced[left], cents[left], cents[right]), interpolated)
    return (10.0 * 2.0 ** (interpolated / 1200.0)).astype(np.float32), np.interp(positions, centres, confidence).astype(
        np.float32)


def mono(block: np.ndarray) -> np.ndarray:
    """A block of samples ([n], or [n, channels], downmixed) as float32 [n]."""
    block = np.asarray(block, np.float32)
    return block.mean(axis=1) if block.ndim == 2 else block.reshape(-1)


def centred_frames(audio: np.ndarray, window: int, hop: int, count: int) -> np.ndarray:
    """``count`` windows centred on samples ``k * hop`` (zeros outside the signal) [count, window]."""
    before, after = window // 2, window - window // 2
    padded = np.concatenate([np.zeros(before, np.float32), np.asarray(audio, np.float32),
                             np.zeros(max(0, (count - 1) * hop + after - len(audio)), np.float32)])
    return np.lib.stride_tricks.sliding_window_view(padded, window)[::hop][:count]


# Windows analysed at once: a song-length file in one batch took gigabytes (CREPE's activations for every
# window) and then crashed; in batches the memory stays flat whatever the file's length.
ANALYSIS_BATCH = 1024


def analyze_audio(audio: np.ndarray, tracker: Tracker, loudness: str = "v3", sample_rate: int = SAMPLE_RATE,
                  frame_rate: int = FRAME_RATE, progress: Callable[[float], None] | None = None) -> Features:
    """Whole-signal analysis: ``len(audio) // hop`` frames, computed in batches of windows
    (``progress`` is told the fraction done after each)."""
    audio = np.asarray(audio, np.float32)
    hop = sample_rate // frame_rate
    n_frames = len(audio) // hop
    windows = centred_frames(audio, tracker.window, tracker.hop, 1 + len(audio) // tracker.hop)  # a view
    n_batches = -(-len(windows) // ANALYSIS_BATCH)
    estimates = []
    for index, start in enumerate(range(0, len(windows), ANALYSIS_BATCH)):
        estimates.append(tracker.estimate(windows[start:start + ANALYSIS_BATCH]))
        if progress is not None:
            progress(0.9 * (index + 1) / n_batches)
    f0 = np.concatenate([e[0] for e in estimates]) if estimates else np.zeros(0, np.float32)
    confidence = np.concatenate([e[1] for e in estimates]) if estimates else np.zeros(0, np.float32)
    f0_frames, confidence_frames = interpolate_estimates(np.arange(n_frames) * hop, tracker.hop, f0, confidence,
                                                         voiced_threshold=tracker.voiced_threshold)
    levels = _loudness(audio, n_frames, loudness, sample_rate, hop)
    if progress is not None:
        progress(1.0)
    return Features(f0_frames, confidence_frames, levels, frame_rate)


def _loudness(audio: np.ndarray, n_frames: int, flavour_name: str, sample_rate: int, hop: int) -> np.ndarray:
    """Each frame's loudness, in numpy (TensorFlow's ``frame_loudness`` sums the same, within float rounding),
    a batch of windows at a time."""
    flavour = LOUDNESS_FLAVOURS[flavour_name]
    lead = loudness_padding(flavour.n_fft, flavour_name)
    padded = np.concatenate([np.zeros(lead, np.float32), audio, np.zeros(flavour.n_fft, np.float32)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, flavour.n_fft)[:n_frames * hop:hop]
    measure = FrameLoudness(flavour.n_fft, sample_rate, flavour.ref_db, flavour.range_db, flavour_name)
    batch = 16 * ANALYSIS_BATCH
    parts = [measure(windows[start:start + batch]) for start in range(0, len(windows), batch)]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _pitch_lag(tracker: Tracker, hop: int) -> int:
    """Frames the pitch of frame i waits for: until the estimate at or after ``i * hop`` is complete."""
    worst = max(math.ceil(i * hop / tracker.hop) * tracker.hop - i * hop for i in range(tracker.hop))
    return max(0, math.ceil((worst + tracker.lookahead) / hop) - 1)


def live_loudness_truncation(n_fft: int, hop: int) -> tuple[int, float]:
    """Samples (whole hops) a live loudness window goes without at its newest end, and the dB that
    restores a steady sound's level: the most whose share of the Hann window's energy stays
    within :data:`LIVE_LOUDNESS_MISSING_ENERGY`."""
    energy = np.cumsum(np.hanning(n_fft + 1)[:n_fft][::-1] ** 2)  # periodic Hann, newest sample first
    missing = 0
    while missing + hop < n_fft and energy[missing + hop - 1] <= LIVE_LOUDNESS_MISSING_ENERGY * energy[-1]:
        missing += hop
    kept = energy[-1] - (energy[missing - 1] if missing else 0.0)
    return missing, float(10.0 * np.log10(energy[-1] / kept))


class StreamingAnalyzer:
    """Causal analysis of live input in blocks of any size (at the model's sample rate).

    After ``N`` input samples, ``N // hop`` frames have been emitted. Frame j holds the
    loudness of offline frame ``j - loudness_lag`` and the pitch and confidence of offline
    frame ``j - pitch_lag``; earlier frames read as silence (floor loudness, f0 0 Hz).
    """

    def __init__(self, tracker: Tracker, loudness: str = "v3", sample_rate: int = SAMPLE_RATE,
                 frame_rate: int = FRAME_RATE):
        self.tracker = tracker
        self.flavour = LOUDNESS_FLAVOURS[loudness]
        self.sample_rate = sample_rate
        self.frame_rate = frame_rate
        self.hop = sample_rate // frame_rate
        lead = loudness_padding(self.flavour.n_fft, loudness)
        self._loudness_lead = lead
        # v3 only: v1 averages per-bin dB, which a shorter window's leakage shifts by about 3 dB (measured).
        self._missing, self._missing_db = (live_loudness_truncation(self.flavour.n_fft, self.hop)
                                           if loudness == "v3" else (0, 0.0))
        # Frame i is complete once 64(i + lag + 1) samples are in (all but the window's missing end).
        self.loudness_lag = max(0, math.ceil((self.flavour.n_fft - self._missing - lead) / self.hop) - 1)
        self.pitch_lag = _pitch_lag(tracker, self.hop)
        # numpy: a block's few windows cost a TensorFlow call 0.3 ms (measured), numpy tens of microseconds.
        self._block_loudness = FrameLoudness(self.flavour.n_fft, sample_rate, self.flavour.ref_db,
                                             self.flavour.range_db, self.flavour.name)
        self.reset()

    def live_features(self, resting_f0_hz: float | None = None, pitch_ratio: float = 1.0,
                      onset_pitch: bool = True) -> LiveInput:
        """What a live input plays, block by block, on this analysis (its own from then on: :class:`LiveFeatures`)."""
        return LiveFeatures(self, resting_f0_hz, pitch_ratio, onset_pitch)

    @property
    def latency_ms(self) -> dict[str, float]:
        """How far behind the input each feature runs, in milliseconds."""
        frame_ms = 1000.0 / self.frame_rate
        return {"loudness": self.loudness_lag * frame_ms, "pitch": self.pitch_lag * frame_ms}

    def reset(self) -> None:
        """Forget all input: the next sample is sample 0 again."""
        self._margin = max(self.tracker.window, self.flavour.n_fft)
        self._buffer = np.zeros(self._margin, np.float32)  # absolute index of _buffer[0] is -margin
        self._buffer_start = -self._margin
        self._n_in = 0
        self._estimates_f0: list[float] = []
        self._estimates_confidence: list[float] = []
        self._first_estimate = 0
        self._emitted = 0

    def _window(self, start: int, size: int) -> np.ndarray:
        offset = start - self._buffer_start
        return self._buffer[offset:offset + size]

    def process(self, block: np.ndarray) -> Features:
        """Consumes a block of samples ([n], or [n, channels], downmixed), returns the frames it completes."""
        block = mono(block)
        self._buffer = np.concatenate([self._buffer, block])
        self._n_in += len(block)
        tracker, hop = self.tracker, self.hop
        # Tracker estimates whose windows are complete.
        next_k = self._first_estimate + len(self._estimates_f0)
        ready = (self._n_in - tracker.lookahead) // tracker.hop + 1
        if ready > next_k:
            windows = np.stack([self._window(k * tracker.hop - tracker.window // 2, tracker.window)
                                for k in range(next_k, ready)])
            f0, confidence = tracker.estimate(windows)
            self._estimates_f0.extend(f0.tolist())
            self._estimates_confidence.extend(confidence.tolist())
        total = self._n_in // hop
        frames = np.arange(self._emitted, total)
        self._emitted = total
        loudness = np.full(len(frames), -self.flavour.range_db, np.float32)
        loudness_frames = frames - self.loudness_lag
        valid = loudness_frames >= 0
        if valid.any():
            windows = np.zeros((int(valid.sum()), self.flavour.n_fft), np.float32)
            kept = self.flavour.n_fft - self._missing
            for row, i in enumerate(loudness_frames[valid]):
                windows[row, :kept] = self._window(i * hop - self._loudness_lead, kept)
            measured = self._block_loudness(windows)
            loudness[valid] = np.where(measured > -self.flavour.range_db, measured + self._missing_db, measured)
        f0 = np.zeros(len(frames), np.float32)
        confidence = np.zeros(len(frames), np.float32)
        pitch_frames = frames - self.pitch_lag
        valid = pitch_frames >= 0
        if valid.any():
            f0[valid], confidence[valid] = interpolate_estimates(
                pitch_frames[valid] * hop, tracker.hop, np.asarray(self._estimates_f0, np.float32),
                np.asarray(self._estimates_confidence, np.float32), self._first_estimate,
                tracker.voiced_threshold)
        self._forget()
        return Features(f0, confidence, loudness, self.frame_rate)

    def _forget(self) -> None:
        """Drops samples and estimates no future frame will read."""
        hop, tracker = self.hop, self.tracker
        next_pitch_frame = self._emitted - self.pitch_lag
        keep_estimate = max(0, (next_pitch_frame * hop) // tracker.hop - 1)
        drop = keep_estimate - self._first_estimate
        if drop > 0:
            del self._estimates_f0[:drop], self._estimates_confidence[:drop]
            self._first_estimate = keep_estimate
        next_estimate = self._first_estimate + len(self._estimates_f0)
        oldest_needed = min(next_estimate * tracker.hop - tracker.window // 2,
                            (self._emitted - self.loudness_lag) * hop - self._loudness_lead)
        cut = oldest_needed - self._buffer_start
        if cut > 0:
            self._buffer = self._buffer[cut:]
            self._buffer_start += cut


class OnsetPitch:
    """A provisional pitch for the frames a slow tracker has not reached yet, from the newest samples.

    A live frame's loudness arrives 4 ms after the sound, its CREPE pitch 36 ms after (the estimate
    needs half its window after the frame), so a note sung after silence would start on the pitch
    held from before and move to its own 24-56 ms later (measured on harmonic tones of 110-660 Hz):
    a scoop at every onset. YIN over the newest :attr:`window` samples, read backwards so that its
    integration window holds the newest 128 samples (8 ms at 16 kHz), is confident 4-16 ms after the
    onset for voices from 70 Hz up; lower ones stay held until CREPE's pitch arrives.
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, frame_rate: int = FRAME_RATE, confidence: float = 0.85):
        self.yin = Yin(sample_rate, fmin=70.0, integration=128)
        self.window = self.yin.window
        self.hop = sample_rate // frame_rate
        self.confidence = confidence
        self.reset()

    def reset(self) -> None:
        self._recent = np.zeros(self.window, np.float32)  # the newest samples; absolute end at _n_in
        self._n_in = 0

    def process(self, block: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        """Consumes ``block`` (as :meth:`StreamingAnalyzer.process` does, same frames); for each frame
        it completes, the pitch of the ``window`` samples up to that frame's end where ``wanted`` and
        confident, else NaN."""
        block = mono(block)
        recent = np.concatenate([self._recent, block])
        start = self._n_in - self.window  # absolute index of recent[0]
        frames = np.arange(self._n_in // self.hop, (self._n_in + len(block)) // self.hop)
        self._n_in += len(block)
        self._recent = recent[-self.window:]
        f0 = np.full(len(frames), np.nan, np.float32)
        wanted = np.flatnonzero(wanted)
        if len(wanted):
            ends = (frames[wanted] + 1) * self.hop - start
            windows = np.stack([recent[end - self.window:end][::-1] for end in ends])
            estimate, confidence = self.yin.estimate(windows)
            f0[wanted] = np.where(confidence >= self.confidence, estimate, np.nan)
        return f0


class Gate:
    """Confidence gating: unvoiced frames keep the last voiced pitch and their loudness falls.

    Stateful so that a stream gated block by block equals the whole signal gated at once.
    """

    def __init__(self, threshold: float, attenuation_db: float = 20.0, resting_f0_hz: float | None = None):
        """``resting_f0_hz``: the pitch held before the first voiced frame (else the tracker's own)."""
        self.threshold = threshold
        self.attenuation_db = attenuation_db
        self.last_voiced_f0: float | None = resting_f0_hz

    def apply(self, features: Features, provisional: np.ndarray | None = None) -> Features:
        """``provisional``: per frame, a pitch an unvoiced frame takes (and holds on) instead of the
        last voiced one where it is not NaN (:class:`OnsetPitch`)."""
        voiced = features.confidence >= self.threshold
        f0 = features.f0_hz.copy()
        for i in range(len(f0)):
            if voiced[i]:
                self.last_voiced_f0 = float(f0[i])
            elif provisional is not None and not np.isnan(provisional[i]):
                f0[i] = self.last_voiced_f0 = float(provisional[i])
            elif self.last_voiced_f0 is not None:
                f0[i] = self.last_voiced_f0
        loudness = np.where(voiced, features.loudness_db, features.loudness_db - self.attenuation_db)
        return Features(f0, features.confidence, loudness.astype(np.float32), features.frame_rate)


# A note starts when the loudness comes up from within this many dB of the analysis' floor.
ONSET_QUIET_DB = 20.0


def onset_rule(analyzer: StreamingAnalyzer) -> tuple[float, int]:
    """Where a live input's onset pitch may speak: the loudness below which the input is quiet (dB), and the
    frames after quiet that still count as a note's start (the tracker's pitch lag and two more)."""
    return -analyzer.flavour.range_db + ONSET_QUIET_DB, analyzer.pitch_lag + 2


@dataclass
class LiveFrames:
    """A live block as the model takes it: the dry samples (mono, finite), and per frame the pitch to play (Hz,
    shifted), its confidence, the loudness (dB) and the player's own pitch (before the shift)."""

    dry: np.ndarray
    f0_hz: np.ndarray
    confidence: np.ndarray
    loudness_db: np.ndarray
    pitch_hz: np.ndarray


class LiveInput(Protocol):
    """What a live input offers the engine: :class:`LiveFeatures`, or the kernel's twin in one call."""

    def reset(self) -> None:
        """Forgets all input, and the pitch held."""

    def process(self, samples: np.ndarray) -> LiveFrames:
        """A block of samples ([n], or [n, channels]) and the frames it completes."""


class LiveFeatures:
    """Live input to model input: the streaming analysis, unvoiced frames holding the last pitch (or taking a
    provisional one from the newest samples, at onsets), the pitch shift. The reference for
    :class:`~tuibend.native.analysis.NativeLiveFeatures`, which computes the same in one kernel call.

    Unvoiced frames are not made quieter here (the offline gate does that): confidence arrives with the pitch, a
    tracker's look-ahead later than the loudness, so attenuating by it would hold every onset back by the pitch
    lag (36 ms with CREPE) instead of the loudness lag (4 ms).
    """

    def __init__(self, analyzer: StreamingAnalyzer, resting_f0_hz: float | None = None, pitch_ratio: float = 1.0,
                 onset_pitch: bool = True):
        """``resting_f0_hz``: the pitch played before the first voiced frame (shifted, as it is heard)."""
        self.analyzer = analyzer
        self.pitch_ratio = pitch_ratio
        self.resting_f0_hz = resting_f0_hz
        self.onset_pitch = OnsetPitch(analyzer.sample_rate, analyzer.frame_rate) if onset_pitch else None
        self.quiet_db, self.onset_frames = onset_rule(analyzer)
        self.reset()

    def reset(self) -> None:
        self.analyzer.reset()
        if self.onset_pitch is not None:
            self.onset_pitch.reset()
        resting = None if self.resting_f0_hz is None else self.resting_f0_hz / self.pitch_ratio
        self.gate = Gate(self.analyzer.tracker.voiced_threshold, attenuation_db=0.0, resting_f0_hz=resting)
        self._frames_since_quiet = 0

    def process(self, samples: np.ndarray) -> LiveFrames:
        """A block of samples ([n], or [n, channels], downmixed; NaN and Inf heard as silence) and the frames it
        completes."""
        samples = mono(samples)
        if not np.isfinite(samples).all():  # a misbehaving source (another JACK client): silence, passed on nowhere
            samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
        analysed = self.analyzer.process(samples)
        provisional = None
        if self.onset_pitch is not None:
            # A note's first frames after quiet, where the tracker's pitch (36 ms behind with CREPE) is not voiced
            # yet, take the pitch of the newest samples. Only there: mid-phrase, where the tracker doubts a frame,
            # the short window's estimate is less sure than holding (octave errors, measured).
            since_quiet = np.empty(len(analysed), np.int64)
            for i, quiet in enumerate(analysed.loudness_db < self.quiet_db):
                self._frames_since_quiet = 0 if quiet else self._frames_since_quiet + 1
                since_quiet[i] = self._frames_since_quiet
            onset = (since_quiet >= 1) & (since_quiet <= self.onset_frames)  # sounding, newly
            provisional = self.onset_pitch.process(samples, onset & (analysed.confidence < self.gate.threshold))
        gated = self.gate.apply(analysed, provisional)
        return LiveFrames(samples, (gated.f0_hz * self.pitch_ratio).astype(np.float32), gated.confidence,
                          gated.loudness_db, gated.f0_hz)
