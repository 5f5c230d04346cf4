"""Pure tensor functions of DDSP: synths, filters, reverb, loudness and losses.

This package imports nothing else of tuibend; everything else builds on it.
"""

from tuibend.dsp.core import exp_sigmoid, hz_to_midi, midi_to_hz, normalize_harmonics
from tuibend.dsp.effects import reverb, reverb_step
from tuibend.dsp.spectral import LOUDNESS_FLAVOURS, loudness, spectral_loss
from tuibend.dsp.synths import (
    filtered_noise,
    filtered_noise_step,
    frequency_filter,
    harmonic_controls,
    harmonic_synth,
    harmonic_synth_step,
    noise_controls,
)

__all__ = [
    "LOUDNESS_FLAVOURS",
    "exp_sigmoid",
    "filtered_noise",
    "filtered_noise_step",
    "frequency_filter",
    "harmonic_controls",
    "harmonic_synth",
    "harmonic_synth_step",
    "hz_to_midi",
    "loudness",
    "midi_to_hz",
    "noise_controls",
    "normalize_harmonics",
    "reverb",
    "reverb_step",
    "spectral_loss",
]
