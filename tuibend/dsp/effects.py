"""The trained impulse-response reverb (ddsp ``Reverb``, add_dry), whole-signal and streaming.

The stream uses uniformly partitioned overlap-save convolution: the response is cut
into partitions of one block, their spectra are computed once, and each block costs
one FFT, one multiply-accumulate over a frequency-domain delay line and one inverse
FFT, whatever the response length. The tail therefore carries across blocks with no
seam, unlike the seed's per-block reverb that restarted at every block.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import tensorflow as tf

from tuibend.dsp.core import f32, fft_convolve


def wet_response(impulse_response) -> tf.Tensor:
    """ddsp masks the first tap: the dry path is added separately."""
    impulse_response = f32(impulse_response)
    return tf.concat([tf.zeros_like(impulse_response[..., :1]), impulse_response[..., 1:]], axis=-1)


def reverb(audio, impulse_response) -> tf.Tensor:
    """Dry plus the causal convolution with the response: [b, n], [ir] -> [b, n]."""
    audio = f32(audio)
    response = tf.broadcast_to(wet_response(impulse_response), [tf.shape(audio)[0], impulse_response.shape[-1]])
    return audio + fft_convolve(audio, response, delay_compensation=0)


def partition_spectra(impulse_response, block_size: int) -> tf.Tensor:
    """Spectra [n_parts, block+1] of the wet response cut into ``block_size`` partitions."""
    response = wet_response(impulse_response)
    n_parts = math.ceil(int(response.shape[-1]) / block_size)
    response = tf.pad(response, [[0, n_parts * block_size - int(response.shape[-1])]])
    return tf.signal.rfft(tf.reshape(response, [n_parts, block_size]), [2 * block_size])


class ReverbState(NamedTuple):
    """The previous input block and the frequency-domain delay line of input spectra."""

    previous: tf.Tensor  # [b, block]
    spectra: tf.Tensor  # [b, n_parts, block+1] complex64, newest first


def reverb_initial_state(batch: int, n_parts: int, block_size: int) -> ReverbState:
    """A reverb with nothing in its tail."""
    return ReverbState(tf.zeros([batch, block_size]), tf.zeros([batch, n_parts, block_size + 1], tf.complex64))


def reverb_step(state: ReverbState, audio, partitions: tf.Tensor) -> tuple[tf.Tensor, ReverbState]:
    """One block [b, block] through the reverb; equals :func:`reverb` over the joined blocks."""
    audio = f32(audio)
    block_size = int(audio.shape[-1])
    spectrum = tf.signal.rfft(tf.concat([state.previous, audio], axis=1), [2 * block_size])
    spectra = tf.concat([spectrum[:, tf.newaxis], state.spectra[:, :-1]], axis=1)
    wet = tf.signal.irfft(tf.reduce_sum(spectra * partitions, axis=1), [2 * block_size])[:, block_size:]
    return audio + wet, ReverbState(audio, spectra)
