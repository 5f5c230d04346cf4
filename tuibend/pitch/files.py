"""Pre-analysed files: features computed once per file content and settings, then cached.

The cache key hashes the file's bytes and every analysis setting, so a changed file or a
changed setting is never served stale. Entries are plain ``.npz`` arrays written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tuibend.atomic import atomic_path
from tuibend.audiofile import AudioFileError, check_audio, read_audio
from tuibend.pitch.analysis import FRAME_RATE, SAMPLE_RATE, Features, analyze_audio
from tuibend.pitch.trackers import Tracker, make_tracker
from tuibend.places import user_cache

ANALYSIS_VERSION = 2  # bump when the analysis itself changes (2: no glides towards unvoiced estimates)


def cache_dir() -> Path:
    """The analysis cache in the user's cache folder (``~/.cache/tuibend/analysis`` on Linux)."""
    return user_cache("analysis")


def cache_key(path: Path, settings: dict) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    digest.update(json.dumps({**settings, "version": ANALYSIS_VERSION}, sort_keys=True).encode())
    return digest.hexdigest()[:40]


def _load_cached(path: Path) -> Features | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            return Features(data["f0_hz"], data["confidence"], data["loudness_db"], int(data["frame_rate"]))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None  # absent or damaged: analyse again and overwrite


def _store(path: Path, features: Features) -> None:
    with atomic_path(path) as temporary:
        np.savez(temporary, f0_hz=features.f0_hz, confidence=features.confidence, loudness_db=features.loudness_db,
                 frame_rate=features.frame_rate)


def _tracker(name: str, crepe_hop: int, crepe: Callable[[str], object] | None) -> Tracker:
    network = crepe(name.removeprefix("crepe-")) if crepe is not None and name.startswith("crepe-") else None
    return make_tracker(name, crepe_hop, network=network)


def analyze(path_or_audio, sample_rate: int | None = None, tracker: str = "crepe-tiny", loudness: str = "v3",
            crepe_hop: int = 160, use_cache: bool = True, progress=None,
            crepe: Callable[[str], object] | None = None) -> Features:
    """f0, confidence and loudness at the model frame rate (250/s) of a file or an array.

    A file is read at any rate and channel count (downmixed, resampled with soxr) and its
    features are cached; an array needs its ``sample_rate``. ``progress`` is told the fraction done.
    ``crepe``: makes the CREPE network of a capacity, called only when a file needs analysing (default
    TensorFlow's; the native kernel's in float32 gives the same features within float rounding, and loads no
    TensorFlow).
    """
    settings = {"tracker": tracker, "loudness": loudness, "crepe_hop": crepe_hop, "sample_rate": SAMPLE_RATE,
                "frame_rate": FRAME_RATE}
    if isinstance(path_or_audio, (str, os.PathLike)):
        path = Path(path_or_audio)
        audio = read_audio(path, SAMPLE_RATE)  # validates the file before anything is cached
        if len(audio) < SAMPLE_RATE // FRAME_RATE:
            raise AudioFileError(f"{path}: too short to analyse ({len(audio)} samples at {SAMPLE_RATE} Hz)")
        entry = cache_dir() / f"{cache_key(path, settings)}.npz" if use_cache else None
        if entry is not None and (cached := _load_cached(entry)) is not None:
            return cached
        features = analyze_audio(audio, _tracker(tracker, crepe_hop, crepe), loudness, progress=progress)
        if entry is not None:
            _store(entry, features)
        return features
    if sample_rate is None:
        raise ValueError("analyze(array) needs the array's sample_rate")
    from tuibend.audiofile import resample

    audio = check_audio(np.asarray(path_or_audio, np.float32), "audio")
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    return analyze_audio(resample(audio, sample_rate, SAMPLE_RATE), _tracker(tracker, crepe_hop, crepe), loudness,
                         progress=progress)
