"""The trained impulse-response reverb (ddsp ``Reverb``, add_dry), whole-signal and streaming.

The stream uses uniformly partitioned overlap-save convolution: the response is cut
into partitions of one block, their spectra are computed once, and each block costs
one FFT, one multiply-accumulate over a frequency-domain delay line (a ring written in
place) and one inverse FFT. The tail therefore carries across blocks with no
seam, unlike a per-block reverb that would restart at every block.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from tuibend.dsp.core import f32, fft_convolve
from tuibend.dsp.plain import response_partitions


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
    """The wet response's partition spectra laid out for :func:`reverb_step`: [2 * n_parts, block+1].

    The response is cut into ``block_size`` partitions whose spectra run in reverse order
    (partition 0, then n-1 down to 1) and the list is written twice, so that a block's window
    of n rows, taken at an offset that moves with the delay line's newest slot, pairs every
    stored input spectrum with the partition of its age: the delay line is a ring written in
    place, never shifted (shifting it cost a copy of the whole line per block).
    """
    blocks = tf.constant(response_partitions(np.asarray(impulse_response), block_size), tf.float32)
    n_parts = int(blocks.shape[0])
    spectra = tf.signal.rfft(blocks, [2 * block_size])
    by_slot = tf.gather(spectra, (-tf.range(n_parts)) % n_parts)
    return tf.concat([by_slot, by_slot], axis=0)


class ReverbState(NamedTuple):
    """The previous input block and a ring of the input spectra (frequency-domain delay line)."""

    previous: tf.Tensor  # [b, block]
    spectra: tf.Tensor  # [n_parts, b, block+1] complex64, a ring
    newest: tf.Tensor  # int32 []: the ring slot of the latest spectrum


def reverb_initial_state(batch: int, partitions: tf.Tensor) -> ReverbState:
    """A reverb with nothing in its tail, for ``partitions`` from :func:`partition_spectra`."""
    n_parts, block_size = int(partitions.shape[0]) // 2, int(partitions.shape[1]) - 1
    return ReverbState(tf.zeros([batch, block_size]), tf.zeros([n_parts, batch, block_size + 1], tf.complex64),
                       tf.constant(n_parts - 1, tf.int32))


def reverb_step(state: ReverbState, audio, partitions: tf.Tensor) -> tuple[tf.Tensor, ReverbState]:
    """One block [b, block] through the reverb; equals :func:`reverb` over the joined blocks.

    ``partitions`` comes from :func:`partition_spectra`. The spectrum in slot s is (newest - s)
    mod n blocks old, so it meets partition (newest - s) mod n, which the doubled, reversed
    layout holds at row s + n - newest.
    """
    audio = f32(audio)
    block_size = int(audio.shape[-1])
    n_parts = int(state.spectra.shape[0])
    newest = (state.newest + 1) % n_parts
    spectrum = tf.signal.rfft(tf.concat([state.previous, audio], axis=1), [2 * block_size])
    spectra = tf.tensor_scatter_nd_update(state.spectra, newest[tf.newaxis, tf.newaxis], spectrum[tf.newaxis])
    window = tf.gather(partitions, tf.range(n_parts) + (n_parts - newest))  # a slice would recompile per offset
    wet = tf.signal.irfft(tf.reduce_sum(spectra * window[:, tf.newaxis], axis=0), [2 * block_size])[:, block_size:]
    return audio + wet, ReverbState(audio, spectra, newest)
