"""Datasets for training: recordings cut into analysed 4-second examples, kept as shards on disk.

Each recording is split into chunks; whole chunks go to the held-out set (so no held-out
example overlaps a training one), and each chunk is cut into examples of 4 s every 1 s, as
ddsp does. Shards are ``.npz`` files of audio, f0, confidence and loudness that the trainer
streams, so a dataset need not fit in memory. ``dataset.json`` records the settings, the
counts and the statistics the model will carry (mean pitch, loudness quantiles).

A dataset may live in any folder TensorFlow's file system reaches (:mod:`tuibend.training.storage`).
Preparation is resumable: each recording's shards and features are written, then ``progress.json``
notes it done, so the same command run again after an interruption goes on with the next recording.

A microphone has a noise floor; a model that only ever heard digital silence between notes keeps
a note sounding in a floor (its loudness is not the silence it knows). So each recording may be
analysed with white noise at a floor level mixed in (``noise_floors``, dBFS RMS, cycled over the
recordings) while the example's target audio stays clean: the model learns that a floor's loudness
means silence.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from tuibend.audiofile import AudioFileError, read_audio
from tuibend.dsp.plain import hz_to_midi
from tuibend.errors import TuibendError
from tuibend.model.statistics import DatasetStatistics
from tuibend.pitch.analysis import Features, analyze_audio
from tuibend.pitch.trackers import make_tracker
from tuibend.places import crepe_weights
from tuibend.training.storage import exists, join, make_folder, read_arrays, read_text, write_arrays, write_text

SAMPLE_RATE = 16000
FRAME_RATE = 250
EXAMPLE_SECONDS = 4.0
HOP_SECONDS = 1.0
CHUNK_SECONDS = 20.0
SHARD_SIZE = 64
MANIFEST = "dataset.json"
PROGRESS = "progress.json"
# Noise floors (dBFS RMS) mixed into the analysis of successive recordings; None: analysed clean.
NOISE_FLOORS: tuple[float | None, ...] = (None, -70.0, -60.0, -50.0)
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".mp3")


class DatasetError(TuibendError, ValueError):
    """A dataset that cannot be built or read, with the reason."""


def default_tracker() -> str:
    """CREPE full where its weights are installed, tiny otherwise."""
    return "crepe-full" if crepe_weights("full").exists() else "crepe-tiny"


def _examples(audio: np.ndarray, features: Features) -> Iterator[dict[str, np.ndarray]]:
    """4 s examples every 1 s over one chunk (audio and its frame-aligned features)."""
    samples, frames = int(EXAMPLE_SECONDS * SAMPLE_RATE), int(EXAMPLE_SECONDS * FRAME_RATE)
    hop = SAMPLE_RATE // FRAME_RATE
    for start in range(0, len(features) - frames + 1, int(HOP_SECONDS * FRAME_RATE)):
        yield {"audio": audio[start * hop:start * hop + samples], "f0_hz": features.f0_hz[start:start + frames],
               "confidence": features.confidence[start:start + frames],
               "loudness_db": features.loudness_db[start:start + frames]}


def dataset_statistics(f0_hz: np.ndarray, confidence: np.ndarray, loudness_db: np.ndarray,
                       n_quantiles: int = 1000) -> DatasetStatistics:
    """Mean pitch and register (MIDI, confident frames: 5th and 95th percentiles) and loudness quantiles,
    as ddsp's dataset statistics."""
    voiced = confidence >= 0.5
    midi = hz_to_midi(np.maximum(f0_hz[voiced], 1e-3))
    references = np.linspace(0.0, 1.0, n_quantiles)
    low, high = np.quantile(midi, [0.05, 0.95]) if voiced.any() else (48.0, 72.0)
    scalars = {"mean_pitch": float(np.mean(midi)) if voiced.any() else 60.0,
               "pitch_low": float(low), "pitch_high": float(high),
               "mean_loudness": float(np.mean(loudness_db)), "max_loudness": float(np.max(loudness_db))}
    return DatasetStatistics(scalars, np.quantile(loudness_db[voiced] if voiced.any() else loudness_db, references),
                             references)


def build_dataset(inputs: Sequence[str | os.PathLike], output: str | os.PathLike, tracker: str | None = None,
                  holdout: float = 0.1, seed: int = 0,
                  noise_floors: Sequence[float | None] = NOISE_FLOORS,
                  progress: Callable[[float], None] | None = None) -> dict:
    """Analyses ``inputs`` (files or folders of audio) into a dataset folder; returns its manifest.

    Run again with the same inputs and settings after an interruption, it goes on where it stopped.
    """
    paths = []
    for item in map(Path, inputs):
        if item.is_dir():
            paths += sorted(p for p in item.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            paths.append(item)
    if not paths:
        raise DatasetError("no audio files given (folders are searched for .wav, .flac, .ogg, .aiff, .mp3)")
    tracker = tracker or default_tracker()
    folder = os.fspath(output)
    make_folder(folder)
    settings = {"tracker": tracker, "holdout": holdout, "seed": seed, "noise_floors": list(noise_floors),
                "sources": [str(p) for p in paths]}
    done = _prepared(folder, settings)
    analyser = None
    for number, path in enumerate(paths):
        if str(number) not in done:
            analyser = analyser or make_tracker(tracker)
            done[str(number)] = _prepare_recording(folder, number, path, analyser, holdout, seed, noise_floors)
            write_text(join(folder, PROGRESS), json.dumps({"settings": settings, "recordings": done}) + "\n")
        if progress is not None:
            progress((number + 1) / len(paths))
    records = [done[str(number)] for number in range(len(paths))]
    counts = {split: sum(r["examples"][split] for r in records) for split in ("train", "holdout")}
    if counts["train"] == 0:
        raise DatasetError("the recordings gave no training examples")
    joined = Features.concatenate([Features(**read_arrays(join(folder, r["features"]))) for r in records])
    statistics = dataset_statistics(joined.f0_hz, joined.confidence, joined.loudness_db)
    write_arrays(join(folder, "statistics.npz"), statistics.to_arrays())
    manifest = {"format": "tuibend-dataset", "version": 1, "sample_rate": SAMPLE_RATE, "frame_rate": FRAME_RATE,
                "example_seconds": EXAMPLE_SECONDS, "tracker": tracker, "loudness": "v3",
                "noise_floors_db": list(noise_floors), "sources": settings["sources"], "examples": counts,
                "shards": {split: [name for r in records for name in r["shards"][split]]
                           for split in ("train", "holdout")}}
    write_text(join(folder, MANIFEST), json.dumps(manifest, indent=2) + "\n")
    return manifest


def _prepared(folder: str, settings: dict) -> dict[str, dict]:
    """The recordings an earlier run of the same preparation finished (none if its settings differ)."""
    path = join(folder, PROGRESS)
    if not exists(path):
        return {}
    try:
        state = json.loads(read_text(path))
    except json.JSONDecodeError:
        return {}
    return dict(state.get("recordings", {})) if state.get("settings") == settings else {}


def _prepare_recording(folder: str, number: int, path: Path, analyser, holdout: float, seed: int,
                       noise_floors: Sequence[float | None]) -> dict:
    """One recording analysed and cut into its own shards; what ``progress.json`` keeps of it."""
    audio = read_audio(path, SAMPLE_RATE)
    if len(audio) < EXAMPLE_SECONDS * SAMPLE_RATE:
        raise AudioFileError(f"{path}: {len(audio) / SAMPLE_RATE:.1f} s is shorter than one "
                             f"{EXAMPLE_SECONDS:.0f}-second example")
    floor_db = noise_floors[number % len(noise_floors)] if noise_floors else None
    heard = audio
    if floor_db is not None:
        noise = np.random.default_rng([seed, number]).standard_normal(len(audio)).astype(np.float32)
        heard = audio + noise * np.float32(10.0 ** (floor_db / 20.0))
    features = analyze_audio(heard, analyser)
    features_name = f"features-{number:05d}.npz"
    write_arrays(join(folder, features_name), {"f0_hz": features.f0_hz, "confidence": features.confidence,
                                               "loudness_db": features.loudness_db})
    examples: dict[str, list] = {"train": [], "holdout": []}
    chunk, hop = int(CHUNK_SECONDS * SAMPLE_RATE), SAMPLE_RATE // FRAME_RATE
    rng = np.random.default_rng([seed, number, 1])
    for start in range(0, len(audio), chunk):
        piece = audio[start:start + chunk]
        split = "holdout" if rng.random() < holdout else "train"
        examples[split].extend(_examples(piece, features[start // hop:(start + len(piece)) // hop]))
    shards: dict[str, list[str]] = {"train": [], "holdout": []}
    for split, items in examples.items():
        for first in range(0, len(items), SHARD_SIZE):
            name = f"{split}-{number:05d}-{first // SHARD_SIZE:03d}.npz"
            group = items[first:first + SHARD_SIZE]
            write_arrays(join(folder, name), {key: np.stack([e[key] for e in group]).astype(np.float32)
                                              for key in group[0]})
            shards[split].append(name)
    return {"features": features_name, "shards": shards,
            "examples": {split: len(items) for split, items in examples.items()}}


def read_manifest(folder: str | os.PathLike) -> dict:
    path = join(folder, MANIFEST)
    try:
        manifest = json.loads(read_text(path))
    except FileNotFoundError:
        raise DatasetError(f"{folder}: not a dataset (no {MANIFEST}; build one with `tuibend dataset`)") from None
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path}: not valid JSON ({error})") from None
    if manifest.get("format") != "tuibend-dataset":
        raise DatasetError(f"{path}: field 'format' must be 'tuibend-dataset'")
    return manifest


def read_statistics(folder: str | os.PathLike) -> DatasetStatistics:
    return DatasetStatistics.from_arrays(read_arrays(join(folder, "statistics.npz")))


def spread_examples(folder: str | os.PathLike, split: str, count: int) -> Iterator[dict]:
    """About ``count`` examples of ``split`` taken evenly from every shard (each recording has its own), in
    order: a sample of the whole split where the first examples would all come from one recording."""
    names = list(read_manifest(folder)["shards"][split])
    share = -(-count // max(1, len(names)))
    for name in names:
        shard = read_arrays(join(folder, name))  # never empty: a shard is written for examples
        for index in np.unique(np.linspace(0, len(shard["audio"]) - 1, share).round().astype(int)):
            yield {key: shard[key][index] for key in ("audio", "f0_hz", "loudness_db")}


def iterate_examples(folder: str | os.PathLike, split: str, shuffle: bool, seed: int = 0,
                     cache: dict[str, dict[str, np.ndarray]] | None = None) -> Iterator[dict]:
    """Examples one at a time, shard by shard (shards and examples shuffled for training); ``cache``: shards
    read once are kept there (a dataset that fits in memory is read from its folder once)."""
    names = list(read_manifest(folder)["shards"][split])
    rng = np.random.default_rng(seed)
    if shuffle:
        rng.shuffle(names)
    for name in names:
        arrays = cache.get(name) if cache is not None else None
        if arrays is None:
            shard = read_arrays(join(folder, name))
            arrays = {key: shard[key] for key in ("audio", "f0_hz", "loudness_db")}
            if cache is not None:
                cache[name] = arrays
        order = rng.permutation(len(arrays["audio"])) if shuffle else range(len(arrays["audio"]))
        for index in order:
            yield {key: value[index] for key, value in arrays.items()}
