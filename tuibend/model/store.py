"""The model folder: ``config.json``, ``weights.npz``, ``statistics.npz``.

Plain JSON and numpy arrays read with ``allow_pickle=False``: loading a model can never
run code. :func:`read_model` reads and checks a folder without TensorFlow (what the native kernel
renders from); :func:`load_model` builds the TensorFlow model on it. Saving writes a sibling
temporary folder and renames it into place, so an interrupted save never leaves a half-written model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tuibend.atomic import atomic_path
from tuibend.model.config import ModelConfig, ModelFormatError
from tuibend.model.layout import check_weights
from tuibend.model.statistics import DatasetStatistics

if TYPE_CHECKING:
    from tuibend.model.timbre import TimbreModel

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.npz"
STATISTICS_FILE = "statistics.npz"
OWN_FILES = (CONFIG_FILE, WEIGHTS_FILE, STATISTICS_FILE)
DERIVED_FROM_WEIGHTS = ("units.npz",)  # tuibend.bend.units' cache


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise ModelFormatError(f"{path}: missing") from None
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ModelFormatError(f"{path}: not a readable numpy archive ({error})") from None


@dataclass
class ModelFile:
    """A model folder's contents, checked: what the native kernel renders from, with no TensorFlow loaded."""

    config: ModelConfig
    arrays: dict[str, np.ndarray]
    statistics: DatasetStatistics

    def weights(self) -> dict[str, np.ndarray]:
        """All weights by name, as :meth:`TimbreModel.weights` gives them."""
        return self.arrays

    def timbre_model(self) -> TimbreModel:
        """The TensorFlow model on these weights (TensorFlow loads here)."""
        from tuibend.model.timbre import TimbreModel

        return TimbreModel(self.config, self.arrays, self.statistics)


def read_model(path: str | os.PathLike) -> ModelFile:
    """Reads and checks a tuibend model folder; every fault is a :class:`ModelFormatError` naming the file."""
    folder = Path(path)
    if not folder.is_dir():
        hint = " (a magenta-ddsp checkpoint folder? convert it with `tuibend import-ddsp`)"
        raise ModelFormatError(f"{folder}: no such model folder"
                               + (hint if any(folder.parent.glob("ckpt-*.index")) else ""))
    if not (folder / CONFIG_FILE).exists() and any(folder.glob("ckpt-*.index")):
        raise ModelFormatError(f"{folder}: this is a magenta-ddsp checkpoint, not a tuibend model; "
                               f"convert it with `tuibend import-ddsp {folder} -o NEW_FOLDER`")
    config = ModelConfig.read(folder / CONFIG_FILE)
    weights = _read_arrays(folder / WEIGHTS_FILE)
    statistics_path = folder / STATISTICS_FILE
    statistics = DatasetStatistics.from_arrays(_read_arrays(statistics_path)) if statistics_path.exists() else None
    try:
        check_weights(config, weights)
    except ValueError as error:
        raise ModelFormatError(f"{folder / WEIGHTS_FILE}: {error}") from None
    return ModelFile(config, weights, statistics or DatasetStatistics())


def load_model(path: str | os.PathLike) -> TimbreModel:
    """Loads a tuibend model folder into TensorFlow; every fault is a :class:`ModelFormatError` naming the file."""
    return read_model(path).timbre_model()


def save_model(path: str | os.PathLike, config: ModelConfig, weights: dict[str, np.ndarray],
               statistics: DatasetStatistics | None = None) -> Path:
    """Writes a model folder atomically (replacing an existing one only once complete)."""
    folder = Path(path)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        (staging / CONFIG_FILE).write_text(config.to_json(), encoding="utf-8")
        np.savez(staging / WEIGHTS_FILE, **{name: np.asarray(value, np.float32) for name, value in weights.items()})
        if statistics is not None:
            np.savez(staging / STATISTICS_FILE, **statistics.to_arrays())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not folder.exists():
        staging.rename(folder)
        return folder
    # Everything else in the folder (training checkpoints, reports) moves across; caches derived
    # from the old weights are dropped.
    kept = [entry for entry in folder.iterdir() if entry.name not in OWN_FILES + DERIVED_FROM_WEIGHTS]
    for entry in kept:
        entry.rename(staging / entry.name)
    retired = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(retired, ignore_errors=True)
    folder.rename(retired)
    staging.rename(folder)
    shutil.rmtree(retired)
    return folder


def write_config(path: str | os.PathLike, config: ModelConfig) -> Path:
    """Replaces a model folder's ``config.json`` atomically (the weights and caches stay: they do not
    depend on what changes here, such as the output gain)."""
    target = Path(path) / CONFIG_FILE
    if not target.exists():
        raise ModelFormatError(f"{path}: not a model folder (no {CONFIG_FILE})")
    with atomic_path(target) as temporary:
        temporary.write_text(config.to_json(), encoding="utf-8")
    return target


def save_timbre_model(path: str | os.PathLike, model: TimbreModel) -> Path:
    """Saves a loaded (or trained) model."""
    return save_model(path, model.config, model.weights(), model.statistics)
