"""Pure tensor functions of DDSP: synths, filters, reverb, loudness and losses.

This package imports nothing else of tuibend; everything else builds on it. Its functions load
TensorFlow on first use, so that a model's configuration (:mod:`tuibend.dsp.flavours`) reads without it.
"""

from __future__ import annotations

from tuibend.lazy import lazy_exports

_LAZY = {
    "LOUDNESS_FLAVOURS": "flavours", "exp_sigmoid": "core", "hz_to_midi": "core", "midi_to_hz": "core",
    "normalize_harmonics": "core", "reverb": "effects", "reverb_step": "effects", "loudness": "spectral",
    "spectral_loss": "spectral", "filtered_noise": "synths", "filtered_noise_step": "synths",
    "frequency_filter": "synths", "harmonic_controls": "synths", "harmonic_synth": "synths",
    "harmonic_synth_step": "synths", "noise_controls": "synths",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports(__name__, _LAZY)
