"""Reading and writing audio files: any rate and channel count in, atomic writes out."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tuibend.atomic import atomic_path
from tuibend.errors import TuibendError


class AudioFileError(TuibendError, ValueError):
    """An audio file that cannot be used, with the reason."""


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling with soxr (VHQ), float32 out."""
    if from_rate == to_rate:
        return np.asarray(audio, np.float32)
    import soxr

    return soxr.resample(np.asarray(audio, np.float32), from_rate, to_rate, quality="VHQ").astype(np.float32)


def check_audio(audio: np.ndarray, where: str) -> np.ndarray:
    """Refuses NaN/Inf and silence: both would only give a meaningless analysis."""
    if audio.size == 0:
        raise AudioFileError(f"{where}: holds no samples")
    if not np.all(np.isfinite(audio)):
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        raise AudioFileError(f"{where}: holds {bad} NaN or infinite samples")
    if np.max(np.abs(audio)) < 1e-6:
        raise AudioFileError(f"{where}: is silent (peak below -120 dBFS)")
    return audio


def read_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """A file as mono float32 at ``sample_rate``: channels averaged, then resampled."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    try:
        audio, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioFileError(f"{path}: not a readable audio file ({error})") from None
    mono = audio.mean(axis=1)
    check_audio(mono, str(path))
    return resample(mono, int(file_rate), sample_rate)


def check_output_format(path: str | os.PathLike) -> Path:
    """Refuses, before any work is done, a file name whose format cannot be written."""
    import soundfile

    path = Path(path)
    if path.suffix and path.suffix[1:].upper() not in soundfile.available_formats():
        raise AudioFileError(f"{path}: cannot write {path.suffix} files (use .wav, .flac or .ogg)")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the first folder that exists is where the new ones would be made
    if path.is_dir():
        raise AudioFileError(f"{path}: is a folder, not a file to write")
    if not folder.is_dir():
        raise AudioFileError(f"{path}: cannot write here ({folder} is not a folder)")
    if not os.access(folder, os.W_OK):
        raise AudioFileError(f"{path}: cannot write here ({folder} is not writable)")
    return path


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """Writes a file atomically: a temporary file beside it, renamed into place when complete."""
    import soundfile

    path = Path(path)
    with atomic_path(path, suffix=path.suffix or ".wav") as temporary:
        soundfile.write(temporary, np.asarray(audio, np.float32), sample_rate, format=None if path.suffix else "WAV")
    return path
