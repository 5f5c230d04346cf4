"""Is a model good enough? Resynthesis of held-out audio, measured against the input.

The bar: on held-out examples the model never saw, CREPE on the
resynthesis against the input keeps the pitch (median error under 20 cents on voiced frames)
and the dynamics (loudness within 3 dB median, frames above the noise floor).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tuibend.dsp.spectral import spectral_loss
from tuibend.model.config import ModelConfig
from tuibend.model.timbre import TimbreModel
from tuibend.pitch.analysis import Features, analyze_audio
from tuibend.pitch.trackers import make_tracker
from tuibend.training.dataset import DatasetError, iterate_examples, spread_examples

PITCH_BAR_CENTS = 20.0
LOUDNESS_BAR_DB = 3.0


@dataclass
class Evaluation:
    pitch_error_cents: float
    loudness_error_db: float
    examples: int
    # The loudness error split: the output's median level against the input's (a model's overall level,
    # which the engine's level match takes out), and the median error around that offset (its dynamics).
    loudness_offset_db: float = 0.0
    dynamics_error_db: float = 0.0
    loss: float = float("nan")  # the training loss (multi-scale spectral distance), mean over the examples

    @property
    def good_enough(self) -> bool:
        return self.pitch_error_cents < PITCH_BAR_CENTS and self.loudness_error_db < LOUDNESS_BAR_DB


def compare(reference: Features, rendered: Features, voiced_threshold: float = 0.5,
            floor_db: float = -60.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame pitch errors (cents, frames voiced in both) and loudness differences (dB, rendered minus
    reference, signed, on audible frames)."""
    n = min(len(reference), len(rendered))
    voiced = (reference.confidence[:n] >= voiced_threshold) & (rendered.confidence[:n] >= voiced_threshold)
    cents = np.abs(1200 * np.log2(np.maximum(rendered.f0_hz[:n][voiced], 1e-3)
                                  / np.maximum(reference.f0_hz[:n][voiced], 1e-3)))
    audible = reference.loudness_db[:n] > floor_db
    return cents, rendered.loudness_db[:n][audible] - reference.loudness_db[:n][audible]


def evaluate_model(model: TimbreModel, data: str | Path, split: str = "holdout", tracker: str = "crepe-tiny",
                   max_examples: int = 16) -> tuple[Evaluation, np.ndarray, np.ndarray]:
    """Renders up to ``max_examples`` examples of ``split``; returns the evaluation and the first
    example's input and resynthesis (for a spectrogram)."""
    examples = itertools.islice(iterate_examples(data, split, shuffle=False), max_examples)
    return evaluate_examples(model, examples, tracker, f"{data}: no {split} examples to evaluate")


def evaluate_examples(model: TimbreModel, examples: Iterable[dict], tracker: str = "crepe-tiny",
                      none: str = "no examples to evaluate") -> tuple[Evaluation, np.ndarray, np.ndarray]:
    """:func:`evaluate_model` over the given examples; ``none``: the error if there are none."""
    pitch = make_tracker(tracker)
    cents, decibels, losses, first = [], [], [], None
    for example in examples:
        reference = analyze_audio(example["audio"], pitch, model.config.loudness)
        audio = model.render(example["f0_hz"], example["loudness_db"])
        losses.append(float(spectral_loss(example["audio"][np.newaxis], np.asarray(audio)[np.newaxis])))
        errors = compare(reference, analyze_audio(audio, pitch, model.config.loudness), pitch.voiced_threshold)
        cents.append(errors[0])
        decibels.append(errors[1])
        if first is None:
            first = (example["audio"], audio)
    if first is None:
        raise DatasetError(none)
    cents, decibels = np.concatenate(cents), np.concatenate(decibels)
    pitch_error, loss, examples = float(np.median(cents)) if len(cents) else float("inf"), float(np.mean(losses)), \
        len(losses)
    if not len(decibels):
        return Evaluation(pitch_error, float("inf"), examples, 0.0, float("inf"), loss), *first
    offset = float(np.median(decibels))
    return Evaluation(pitch_error, float(np.median(np.abs(decibels))), examples, offset,
                      float(np.median(np.abs(decibels - offset))), loss), *first


def calibrated_config(model: TimbreModel, data: str | Path, examples: int = 48,
                      tracker: str = "crepe-tiny") -> tuple[ModelConfig, Evaluation]:
    """The model's config with the output gain that puts its renders at their inputs' level: the median
    loudness offset over ``examples`` spread across the training split, taken out (the held-out split stays
    for judging). Returns it with the evaluation it was measured from (at the old gain)."""
    evaluation, _, _ = evaluate_examples(model, spread_examples(data, "train", examples), tracker,
                                         f"{data}: no training examples to calibrate on")
    if not np.isfinite(evaluation.loudness_error_db):
        raise DatasetError(f"{data}: no training example sounds above the noise floor: nothing to calibrate on")
    gain_db = round(model.config.output_gain_db - evaluation.loudness_offset_db, 2)
    return replace(model.config, output_gain_db=gain_db).validate("the calibrated config"), evaluation
