"""YIN (de Cheveigné & Kawahara 2002): a cheap pitch tracker with a short window.

The low-latency choice for live input: its window is 704 samples (44 ms) against CREPE's
1024, it runs at every model frame, and it costs a few FFTs per frame on the CPU.
"""

from __future__ import annotations

import numpy as np

from tuibend.dsp.plain import next_power_of_2

SILENCE_POWER = 1e-10  # mean square below which a frame is silent (-100 dBFS)


class Yin:
    """YIN over frames of ``integration + max_lag`` samples; confidence is 1 - d'(tau)."""

    def __init__(self, sample_rate: int = 16000, fmin: float = 50.0, fmax: float = 1000.0,
                 integration: int = 384, threshold: float = 0.15):
        self.sample_rate = sample_rate
        self.min_lag = max(2, int(np.floor(sample_rate / fmax)))
        self.max_lag = int(np.ceil(sample_rate / fmin))
        self.integration = integration
        self.threshold = threshold
        self.window = integration + self.max_lag

    def estimate(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """f0 (Hz) and confidence [n] from frames [n, window]."""
        frames = np.asarray(frames, np.float64)
        w, max_lag = self.integration, self.max_lag
        # Difference function d(tau) = sum_j (x_j - x_{j+tau})^2, j < w, via one correlation.
        size = next_power_of_2(self.window + w)
        spectrum = np.fft.rfft(frames, size)
        head = np.fft.rfft(frames[:, :w], size)
        correlation = np.fft.irfft(spectrum * np.conj(head), size)[:, :max_lag + 1]
        energy = np.cumsum(np.pad(frames ** 2, ((0, 0), (1, 0))), axis=1)
        window_energy = energy[:, w:w + max_lag + 1] - energy[:, :max_lag + 1]
        difference = energy[:, w:w + 1] + window_energy - 2.0 * correlation
        difference[:, 0] = 0.0
        # Cumulative mean normalised difference d'(tau).
        lags = np.arange(1, max_lag + 1)
        running_mean = np.cumsum(difference[:, 1:], axis=1) / lags
        normalised = np.ones_like(difference)
        normalised[:, 1:] = difference[:, 1:] / np.maximum(running_mean, 1e-12)
        search = normalised[:, self.min_lag:max_lag]
        # First dip below the threshold (then its local minimum), else the global minimum.
        below = search < self.threshold
        first = np.where(below.any(axis=1), below.argmax(axis=1), search.argmin(axis=1))
        rows = np.arange(len(frames))
        lag = first.copy()
        descending = below.any(axis=1)
        for _ in range(search.shape[1]):
            step = descending & (lag + 1 < search.shape[1])
            step &= search[rows, np.minimum(lag + 1, search.shape[1] - 1)] < search[rows, lag]
            if not step.any():
                break
            lag[step] += 1
        tau = lag + self.min_lag
        # Parabolic interpolation around tau.
        left = normalised[rows, np.maximum(tau - 1, 1)]
        centre = normalised[rows, tau]
        right = normalised[rows, np.minimum(tau + 1, max_lag)]
        curvature = left - 2 * centre + right
        shift = np.where(np.abs(curvature) > 1e-12, 0.5 * (left - right) / np.where(curvature == 0, 1, curvature), 0)
        f0 = self.sample_rate / (tau + np.clip(shift, -1, 1))
        confidence = np.clip(1.0 - centre, 0.0, 1.0)
        # Digital silence has d'(tau) = 0 at every lag, a "perfect" period: it is unvoiced (below -100 dBFS).
        confidence[energy[:, w] <= SILENCE_POWER * w] = 0.0
        return f0.astype(np.float32), confidence.astype(np.float32)
