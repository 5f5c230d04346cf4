"""Dataset statistics a model was trained with: mean pitch and loudness quantiles.

Kept as plain arrays in ``statistics.npz`` (loaded with ``allow_pickle=False``), used by
the colab's auto-adjust: shift octaves toward the mean pitch and map input loudness
quantiles onto the training data's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class DatasetStatistics:
    """Scalar statistics (``mean_pitch`` in MIDI notes, ...) and the loudness quantile map."""

    scalars: dict[str, float] = field(default_factory=dict)
    loudness_quantiles: np.ndarray | None = None  # dB at each reference quantile
    quantile_references: np.ndarray | None = None  # the quantile levels, 0..1

    @property
    def mean_pitch(self) -> float | None:
        """Mean pitch of the training data as a (fractional) MIDI note."""
        return self.scalars.get("mean_pitch")

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat named arrays for ``np.savez``."""
        arrays = {f"scalar/{k}": np.float64(v) for k, v in self.scalars.items()}
        if self.loudness_quantiles is not None:
            arrays["loudness_quantiles"] = np.asarray(self.loudness_quantiles, np.float64)
            arrays["quantile_references"] = np.asarray(self.quantile_references, np.float64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> DatasetStatistics:
        """Inverse of :meth:`to_arrays`."""
        scalars = {k.removeprefix("scalar/"): float(arrays[k]) for k in arrays if k.startswith("scalar/")}
        quantiles = arrays.get("loudness_quantiles", None)
        references = arrays.get("quantile_references", None)
        return cls(scalars, quantiles, references)
