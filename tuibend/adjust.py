"""The colab's auto-adjust: fit a performance's pitch register and dynamics to a model's training data.

Octave shift toward the model's mean pitch, quantile mapping of loudness onto the training
data's loudness distribution, quieter note-off parts; then manual pitch and loudness shifts.
Follows magenta-ddsp's timbre-transfer colab (``detect_notes``, ``fit_quantile_transform``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    quiet_db: float = 20.0


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


def quantile_map(loudness_db: np.ndarray, mask_on: np.ndarray, statistics: DatasetStatistics) -> np.ndarray:
    """Maps loudness through its own distribution (note-on frames) onto the training data's."""
    references = statistics.quantile_references
    own = np.quantile(loudness_db[mask_on], references)
    # Ties in ``own`` (flat stretches) map to the middle of their range, as scikit-learn does.
    forward = np.interp(loudness_db, own, references)
    backward = -np.interp(-loudness_db, -own[::-1], -references[::-1])
    levels = 0.5 * (forward + backward)
    return np.interp(levels, references, statistics.loudness_quantiles)


def shift_octaves(f0_hz: np.ndarray, mask_on: np.ndarray, mean_pitch: float) -> tuple[np.ndarray, int]:
    """Whole octaves that bring the note-on pitch nearest the training data's mean.

    The colab rounds up below 1.5 octaves (``ceil``), which lifts a performance that sits just
    under the model's register by a whole octave; tuibend takes the nearest octave instead.
    """
    midi = 12.0 * np.log2(np.maximum(f0_hz[mask_on], 1e-3) / 440.0) + 69.0
    octaves = int(np.round((mean_pitch - float(np.mean(midi))) / 12.0))
    return f0_hz * 2.0 ** octaves, octaves


def adjust(features: Features, statistics: DatasetStatistics, adjustment: Adjustment) -> tuple[Features, dict]:
    """Returns adjusted features and a report of what was done."""
    f0 = features.f0_hz.astype(np.float64)
    loudness = features.loudness_db.astype(np.float64)
    report: dict = {"octaves": 0, "loudness_mapped": False, "notes_detected": False}
    mask_on, ratio = detect_notes(loudness, features.confidence.astype(np.float64), adjustment.note_threshold)
    if np.any(mask_on):
        report["notes_detected"] = True
        if adjustment.octave_shift and statistics.mean_pitch is not None:
            f0, report["octaves"] = shift_octaves(f0, mask_on, statistics.mean_pitch)
        if adjustment.loudness_quantiles and statistics.loudness_quantiles is not None:
            loudness = quantile_map(loudness, mask_on, statistics)
            mask_off = ~mask_on
            loudness[mask_off] -= adjustment.quiet_db * (1.0 - ratio[mask_off])
            report["loudness_mapped"] = True
    f0 = f0 * 2.0 ** (adjustment.pitch_shift_semitones / 12.0)
    loudness = loudness + adjustment.loudness_shift_db
    return Features(f0.astype(np.float32), features.confidence, loudness.astype(np.float32),
                    features.frame_rate), report
