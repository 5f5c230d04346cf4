"""The colab's auto-adjust: fit a performance's pitch register and dynamics to a model's training data.

After magenta-ddsp's timbre-transfer colab (``detect_notes``), with two departures heard on real
input: the octave shift moves only a performance that lies outside the model's register (the
colab moves any melody toward the mean, so a flute melody in the flute's own range went up an
octave), and the loudness is placed in the model's range by a straight line (the colab's quantile
map crushed soft playing, 20 dB at the 10th percentile of a voice); silence is the noise gate's
work (``tuibend.dynamics``), not the map's. Then manual pitch and loudness shifts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tuibend.dsp.plain import hz_to_midi
from tuibend.model.statistics import DatasetStatistics
from tuibend.pitch.analysis import Features


@dataclass(frozen=True)
class Adjustment:
    """What to change; the defaults are the colab's."""

    octave_shift: bool = True
    loudness_quantiles: bool = True
    pitch_shift_semitones: float = 0.0
    loudness_shift_db: float = 0.0
    note_threshold: float = 1.0


def smooth(x: np.ndarray, size: int) -> np.ndarray:
    """Moving average ('same' length), as the colab's ``smooth``."""
    return np.convolve(x, np.ones(size) / size, mode="same")


def detect_notes(loudness_db: np.ndarray, confidence: np.ndarray, note_threshold: float = 1.0,
                 exponent: float = 2.0, smoothing: int = 40, confidence_threshold: float = 0.7,
                 min_db: float = -120.0) -> tuple[np.ndarray, np.ndarray]:
    """Frames where a note sounds, and each frame's note-on ratio (the colab's ``detect_notes``)."""
    mean_db = np.mean(loudness_db)
    db = smooth(confidence ** exponent, smoothing) * (loudness_db - min_db)
    threshold = (mean_db - min_db) * confidence_threshold ** exponent
    ratio = db / threshold
    return ratio >= note_threshold, ratio


def place_loudness(loudness_db: np.ndarray, mask_on: np.ndarray, statistics: DatasetStatistics,
                   min_ratio: float = 0.75) -> tuple[np.ndarray, float]:
    """Places the player's loudness range (note-on frames) in the model's, keeping its dynamics.

    The player's median goes to the model's median (voiced frames of its training data); a player
    whose range (5th to 95th percentile) is wider than the model's is narrowed about that median, never
    below ``min_ratio`` of its own range, so a 30 dB crescendo keeps at least 22 dB. The map is a
    straight line: monotone, the quiet end moved exactly as the loud end. Returns the mapped loudness
    and the shift at the median (what the output must make up to sound at the player's level).
    """
    references = statistics.quantile_references
    model_low, model_mid, model_high = np.interp([0.05, 0.5, 0.95], references, statistics.loudness_quantiles)
    own_low, own_mid, own_high = np.quantile(loudness_db[mask_on], [0.05, 0.5, 0.95])
    own_range, model_range = own_high - own_low, model_high - model_low
    ratio = 1.0 if own_range <= model_range or own_range <= 0 else max(model_range / own_range, min_ratio)
    mapped = model_mid + (loudness_db - own_mid) * ratio
    return mapped, float(model_mid - own_mid)


def pitch_range(statistics: DatasetStatistics) -> tuple[float, float]:
    """The model's trained register (MIDI notes, 5th to 95th percentile of its voiced frames); a model
    without it in its statistics is taken to span a fifth below and an octave and a fifth around its mean."""
    low, high = statistics.scalars.get("pitch_low"), statistics.scalars.get("pitch_high")
    if low is None or high is None:
        mean = statistics.mean_pitch if statistics.mean_pitch is not None else 60.0
        return mean - 12.0, mean + 12.0
    return low, high


def shift_octaves(f0_hz: np.ndarray, mask_on: np.ndarray, register: tuple[float, float]) -> tuple[np.ndarray, int]:
    """Whole octaves that bring a performance lying outside the model's register into it.

    A performance whose median note lies inside the register is never moved (a melody the model
    knows stays where it is); one outside moves by the fewest octaves that bring its median
    inside, or nearest to it.
    """
    midi = hz_to_midi(np.maximum(f0_hz[mask_on], 1e-3))
    median = float(np.median(midi))
    low, high = register
    if low <= median <= high:
        return f0_hz, 0
    candidates = range(-4, 5)
    octaves = min(candidates, key=lambda k: (max(low - (median + 12 * k), median + 12 * k - high, 0.0), abs(k)))
    return f0_hz * 2.0 ** octaves, octaves


def adjust(features: Features, statistics: DatasetStatistics, adjustment: Adjustment) -> tuple[Features, dict]:
    """Returns adjusted features and a report of what was done (``loudness_shift_db``: how far the
    loudness was moved at the player's median, for the output to make up)."""
    f0 = features.f0_hz.astype(np.float64)
    loudness = features.loudness_db.astype(np.float64)
    report: dict = {"octaves": 0, "loudness_mapped": False, "notes_detected": False, "loudness_shift_db": 0.0}
    mask_on, _ = detect_notes(loudness, features.confidence.astype(np.float64), adjustment.note_threshold)
    if np.any(mask_on):
        report["notes_detected"] = True
        if adjustment.octave_shift:
            f0, report["octaves"] = shift_octaves(f0, mask_on, pitch_range(statistics))
        if adjustment.loudness_quantiles and statistics.loudness_quantiles is not None:
            loudness, report["loudness_shift_db"] = place_loudness(loudness, mask_on, statistics)
            loudness = np.maximum(loudness, features.loudness_db.min())  # never below the analysis' floor
            report["loudness_mapped"] = True
    f0 = f0 * 2.0 ** (adjustment.pitch_shift_semitones / 12.0)
    loudness = loudness + adjustment.loudness_shift_db
    report["loudness_shift_db"] += adjustment.loudness_shift_db
    return Features(f0.astype(np.float32), features.confidence, loudness.astype(np.float32),
                    features.frame_rate), report
