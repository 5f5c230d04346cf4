"""The loudness scales models are trained with: plain data, read by model configs without TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoudnessFlavour:
    """How a model's preprocessor measured loudness when it was trained.

    ``v3`` is ddsp >= 2 (mean A-weighted power in dB, centre padding); ``v1`` is
    ddsp 1.x, which trained the colab's published models (mean of per-bin A-weighted dB,
    end padding). ``ld_range`` scales dB into the decoder's ``ld_scaled`` input.
    """

    name: str
    n_fft: int
    ref_db: float
    range_db: float
    ld_range: float


LOUDNESS_FLAVOURS = {
    "v3": LoudnessFlavour("v3", n_fft=512, ref_db=0.0, range_db=80.0, ld_range=80.0),
    "v1": LoudnessFlavour("v1", n_fft=2048, ref_db=20.7, range_db=120.0, ld_range=120.0),
}
