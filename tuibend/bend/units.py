"""Statistics of a model's units for informed selection, computed once and cached beside the model.

The decoder runs over a probe performance built from the model's own statistics (glides and
swells across its training register and loudness range, with vibrato); for every bend point
each unit gets its activation variance, its correlation with loudness, pitch and the output's
spectral centroid, and k-means labels of the units' standardised activation profiles.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tuibend.atomic import atomic_path
from tuibend.bend.selection import CLUSTER_COUNTS, kmeans
from tuibend.dsp.plain import hz_to_midi, midi_to_hz
from tuibend.places import is_bundled, user_cache

if TYPE_CHECKING:
    import tensorflow as tf

    from tuibend.model.timbre import TimbreModel

UNITS_FILE = "units.npz"
VERSION = 1


def probe_features(model: TimbreModel, seconds: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """f0 (Hz) and loudness (dB) sweeping the model's register and dynamics."""
    frames = int(seconds * model.config.frame_rate)
    t = np.arange(frames) / model.config.frame_rate
    centre = model.statistics.mean_pitch or 60.0
    midi = centre + 9.0 * np.sin(2 * np.pi * t / 11.0) + 3.0 * np.sin(2 * np.pi * t / 2.3) \
        + 0.3 * np.sin(2 * np.pi * 5.5 * t)
    quantiles = model.statistics.loudness_quantiles
    low, high = (np.quantile(quantiles, 0.05), np.quantile(quantiles, 0.95)) if quantiles is not None else (-60, -5)
    loudness = low + (high - low) * (0.5 - 0.5 * np.cos(2 * np.pi * t / 3.7))
    return midi_to_hz(midi).astype(np.float32), loudness.astype(np.float32)


def _correlation(activations: np.ndarray, feature: np.ndarray) -> np.ndarray:
    a = activations - activations.mean(0)
    f = feature - feature.mean()
    denominator = np.sqrt((a ** 2).sum(0) * (f ** 2).sum()) + 1e-12
    return (a * f[:, None]).sum(0) / denominator


def compute_unit_statistics(model: TimbreModel, seed: int = 0) -> dict[str, np.ndarray]:
    f0, loudness = probe_features(model)
    captured: dict[str, tf.Tensor] = {}

    def record(point: str, activations: tf.Tensor) -> tf.Tensor:
        captured[point] = activations
        return activations

    controls = model.controls(f0, loudness, hook=record)
    distribution = controls["harmonic_distribution"]
    ratios = np.arange(1, distribution.shape[1] + 1)
    centroid = f0 * (distribution * ratios).sum(1) / np.maximum(distribution.sum(1), 1e-9)
    features = {"loudness": loudness, "pitch": hz_to_midi(f0), "centroid": centroid}
    statistics = {"version": np.int64(VERSION)}
    for point, activations in captured.items():
        values = activations.numpy()[0]  # [frames, units]
        statistics[f"{point}/variance"] = values.var(0)
        for name, feature in features.items():
            statistics[f"{point}/correlation/{name}"] = _correlation(values, feature)
        profiles = (values - values.mean(0)) / (values.std(0) + 1e-6)
        for count in CLUSTER_COUNTS:
            if values.shape[1] >= count:
                statistics[f"{point}/clusters/{count}"] = kmeans(profiles.T[:, ::5], count, seed)[0]
    return statistics


def units_path(folder: Path) -> Path:
    """Where a model folder's unit statistics are kept."""
    if is_bundled(folder):
        stamp = (folder / "weights.npz").stat()  # a new release's weights get their own statistics
        return user_cache("units", f"{folder.name}-{stamp.st_size}-{int(stamp.st_mtime)}", UNITS_FILE)
    return folder / UNITS_FILE


def cached_unit_statistics(folder: str | Path) -> dict[str, np.ndarray] | None:
    """A model folder's unit statistics as cached (read without TensorFlow), or None: absent, damaged or stale."""
    try:
        with np.load(units_path(Path(folder)), allow_pickle=False) as data:
            if int(data["version"]) == VERSION:
                return {key: data[key] for key in data.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        pass  # absent or damaged: computed again
    return None


def unit_statistics(model: TimbreModel, folder: str | Path | None) -> dict[str, np.ndarray]:
    """The model's unit statistics from ``folder/units.npz``, computed and cached there if absent (for a
    bundled model, in the user's cache: the package's own folders are never written)."""
    if folder is not None and (cached := cached_unit_statistics(folder)) is not None:
        return cached
    path = units_path(Path(folder)) if folder is not None else None
    statistics = compute_unit_statistics(model)
    if path is not None:
        try:
            with atomic_path(path) as temporary:
                np.savez(temporary, **statistics)
        except OSError:
            pass  # a read-only model folder: use the statistics without caching them
    return statistics
