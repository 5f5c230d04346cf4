"""A model stream run by the native kernel: the same interface as :class:`ModelStream`.

The bends come from a :class:`BendRig` built with ``graph=False``: its controller writes each
block's per-frame values into ``rig.latest``, which the kernel reads; the transforms' memory
(freeze, smooth) lives in the kernel with the rest of the stream's state.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

import numpy as np

from tuibend.bend.registry import SPECS
from tuibend.bend.rig import BendRig
from tuibend.dsp.plain import response_partitions
from tuibend.errors import InputError
from tuibend.native import FIRST_LATE_POINT, BendSpec, Config, library

if TYPE_CHECKING:
    from tuibend.model.store import ModelFile
    from tuibend.model.timbre import TimbreModel

# The registry's order is the kernel's (tb_transform_name; checked when the kernel loads).
TRANSFORM_IDS = {name: index for index, name in enumerate(SPECS)}
# The rows each transform reads, in the kernel's order (its row_a, row_b).
TRANSFORM_ROWS = {name: spec.reads for name, spec in SPECS.items() if spec.reads}
LATE_POINTS = ("fc1", "gru", "fc2", "amps", "harmonics", "noise")


def point_ids(input_keys) -> dict[str, int]:
    ids = {f"{key.removesuffix('_scaled')}_stack": index for index, key in enumerate(input_keys)}
    ids.update({point: FIRST_LATE_POINT + index for index, point in enumerate(LATE_POINTS)})
    return ids


def weight_order(config) -> list[str]:
    """The model's weight names in the order ``tb_create`` reads them."""
    decoder = config.decoder
    layer = ("kernel", "bias", "gamma", "beta")
    names = [f"stack_{key}/{index}/{name}" for key in decoder.input_keys
             for index in range(decoder.layers_per_stack) for name in layer]
    names += ["gru/kernel", "gru/recurrent_kernel", "gru/bias"]
    names += [f"out_stack/{index}/{name}" for index in range(decoder.layers_per_stack) for name in layer]
    return [*names, "dense_out/kernel", "dense_out/bias"]


def reverb_partitions(impulse_response: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """The wet response (first tap masked, as ddsp's) cut into blocks, each block's spectrum over
    2 * block points: [parts, block + 1] real and imaginary parts."""
    spectra = np.fft.rfft(response_partitions(impulse_response, block).astype(np.float64), 2 * block, axis=1)
    return (np.ascontiguousarray(spectra.real, np.float32), np.ascontiguousarray(spectra.imag, np.float32))


def _floats(array: np.ndarray | None):
    return None if array is None else array.ctypes.data_as(ctypes.POINTER(ctypes.c_float))


class NativeStream:
    """Renders a model block by block in the native kernel, with every state carried.

    Equals ``ModelStream`` for the same rig (up to float rounding, measured in the tests) with the
    noise given; its own noise comes from a different generator than TensorFlow's. ``bfloat16``:
    the layers read their weights and inputs in bfloat16 and sum in float32 where the CPU has
    AVX512-BF16 (half the bytes to stream per block: about 1.5-2x faster, 0.3-0.7 % RMS off float32,
    measured); :attr:`bfloat16` says whether they do. ``int8``: the GRU's recurrent kernel, read once a frame,
    in 8 bits where the CPU has AVX512-VNNI (half its bfloat16 bytes: 1.15-1.4x faster back to back on an AMD
    Zen 4, whose 1 MB L2 does not hold it in bfloat16; 0.43-0.62 % RMS off float32 with bfloat16 layers, against
    0.31-0.55 % for those alone, measured); by default with bfloat16 where the CPU has no AMX (whose tiles were
    measured without it); :attr:`int8` says whether it does.
    ``threads``: how many threads share each block (its layers' panels, the recurrence's too, and the two
    synths), the caller one of them; for renders, whose blocks of many frames keep every core busy (the same output to
    the bit); :attr:`threads` says how many do. The live engine steps on one.
    ``model``: a :class:`TimbreModel`, or a :class:`~tuibend.model.store.ModelFile` read without TensorFlow.
    """

    def __init__(self, model: TimbreModel | ModelFile, rig: BendRig, block_frames: int, seed: int = 0,
                 bfloat16: bool = False, int8: bool | None = None, threads: int = 1):
        config = model.config
        decoder = config.decoder
        if rig.block_frames != block_frames:
            raise ValueError(f"the rig is for blocks of {rig.block_frames} frames, the stream for {block_frames}")
        self.model = model
        self.rig = rig
        self.block_frames = block_frames
        self.block_samples = block_frames * config.hop
        self._lib = library()
        recurrence_in_8_bits = bfloat16 and not self._lib.amx if int8 is None else int8
        weights = model.weights()
        self._keep = [np.ascontiguousarray(weights[name], np.float32) for name in weight_order(config)]
        pointers = (ctypes.POINTER(ctypes.c_float) * len(self._keep))(*(_floats(array) for array in self._keep))
        parts, part_re, part_im = 0, None, None
        if config.reverb:
            part_re, part_im = reverb_partitions(weights["reverb/ir"], self.block_samples)
            parts = len(part_re)
        c = Config(n_inputs=len(decoder.input_keys), ch=decoder.ch, layers=decoder.layers_per_stack,
                   rnn=decoder.rnn_channels, n_harmonics=decoder.n_harmonics, n_bands=decoder.n_noise_bands,
                   hop=config.hop, block_frames=block_frames, reverb_parts=parts, bfloat16=int(bfloat16),
                   amp_linear=int(config.amp_resample_method == "linear"), int8=int(recurrence_in_8_bits),
                   sample_rate=config.sample_rate, f0_range=config.f0_range, ld_range=config.ld_range,
                   noise_bias=config.noise_initial_bias, output_gain=config.output_gain, seed=seed)
        for index, key in enumerate(decoder.input_keys):
            c.input_is_f0[index] = int(key == "f0_scaled")
        ids = point_ids(decoder.input_keys)
        specs = (BendSpec * max(1, len(rig.bends)))()
        for index, bend in enumerate(rig.bends):
            rows = [rig.rows[(index, name)] for name in TRANSFORM_ROWS.get(bend.transform, ())] + [-1, -1]
            specs[index] = BendSpec(
                point=ids[bend.point], transform=TRANSFORM_IDS[bend.transform], units=rig.units[index],
                row_proportion=rig.rows[(index, "proportion")], row_a=rows[0], row_b=rows[1],
                eligible=rig.eligible[index], ranks=_floats(rig.ranks[index]),
                permutation=rig.permutations[index].ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                seed=bend.seed)
        handle = self._lib.tb_create(ctypes.byref(c), pointers, _floats(part_re), _floats(part_im),
                                     len(rig.bends), specs)
        if not handle:
            raise InputError(f"the native kernel cannot run this model at {self.block_samples}-sample blocks "
                             "(it takes blocks of a power of two up to 4096 samples, and models whose noise "
                             "filter fits one hop)")
        self._handle = ctypes.c_void_p(handle)
        self.bfloat16 = bool(self._lib.tb_bfloat16(self._handle))
        self.int8 = bool(self._lib.tb_int8(self._handle))
        self.threads = self._lib.tb_threads(self._handle, threads) if threads > 1 else 1
        self._keep = None  # the kernel holds its own packed copy
        self._f0 = np.zeros(block_frames, np.float32)
        self._loudness = np.zeros(block_frames, np.float32)
        self._inputs = (self._f0.ctypes.data, self._loudness.ctypes.data)  # fixed addresses: looked up once

    def __del__(self):
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self._lib.tb_destroy(handle)
            self._handle = None

    def reset(self) -> None:
        """Back to silence: GRU state, phase, filter and reverb tails, and the bends' memory."""
        self._lib.tb_reset(self._handle)

    def continue_from(self, other: NativeStream) -> None:
        """Takes over another native stream's state (same model and block size), for a click-free chain
        change; this stream's bends start afresh (as the engine resets a TensorFlow chain's rig)."""
        if self._lib.tb_continue_from(self._handle, other._handle):
            raise ValueError("a stream can only continue one of the same model and block size")

    def step(self, f0_hz, loudness_db, noise=None) -> np.ndarray:
        """One block: ``block_frames`` frames of f0 and loudness -> ``block_frames * hop`` samples.

        ``noise`` (optional, [block_frames * hop]) replaces the stream's own white noise."""
        f0 = np.asarray(f0_hz, np.float32).reshape(-1)
        if f0.shape[0] != self.block_frames:
            raise ValueError(f"this stream takes blocks of {self.block_frames} frames, got {f0.shape[0]}")
        self._f0[:] = f0
        self._loudness[:] = np.asarray(loudness_db, np.float32).reshape(-1)
        values = np.ascontiguousarray(self.rig.latest, np.float32)
        given = None if noise is None else np.ascontiguousarray(noise, np.float32).reshape(self.block_samples)
        out = np.empty(self.block_samples, np.float32)
        self._lib.tb_step(self._handle, *self._inputs, values.ctypes.data, values.shape[0],
                          None if given is None else given.ctypes.data, out.ctypes.data)
        return out
