"""The live analysis in the native kernel: a block's CREPE estimates, pitch and loudness frames in one C call.

:class:`~tuibend.pitch.analysis.StreamingAnalyzer` spends most of a live block outside CREPE's own
arithmetic: numpy calls on a few samples each (framing, a four-window FFT, interpolation), which pay for
caches the model's step has just flushed. ``block.c``'s ``tb_analysis_process`` computes the same frames,
with the same lags, in one call: CREPE through the kernel's network, the loudness through its FFT.
"""

from __future__ import annotations

import ctypes

import numpy as np

from tuibend.native import AnalysisConfig, NativeUnavailable
from tuibend.native.crepe import NativeCrepe
from tuibend.pitch.analysis import FRAME_RATE, SAMPLE_RATE, Features, StreamingAnalyzer, mono
from tuibend.pitch.crepe_format import search_bins
from tuibend.pitch.trackers import Tracker

CHUNK = 4096  # block.c's ANALYSIS_CHUNK: the most samples one call takes


class NativeAnalyzer(StreamingAnalyzer):
    """:class:`StreamingAnalyzer`'s frames (its lags, both loudness flavours) from the kernel, for a tracker
    whose network is a :class:`~tuibend.native.crepe.NativeCrepe`."""

    def __init__(self, tracker: Tracker, loudness: str = "v3", sample_rate: int = SAMPLE_RATE,
                 frame_rate: int = FRAME_RATE):
        if not isinstance(tracker.estimator, NativeCrepe):
            raise ValueError(f"the native analysis runs the kernel's CREPE, not {tracker.name}'s "
                             f"{type(tracker.estimator).__name__}")
        self._handle = None
        super().__init__(tracker, loudness, sample_rate, frame_rate)
        self._crepe = tracker.estimator  # the analysis holds its network: kept alive as long
        self._lib = self._crepe._lib
        measure = self._block_loudness
        low, high = search_bins()
        config = AnalysisConfig(self.hop, tracker.hop, self.flavour.n_fft, self._loudness_lead,
                                self.flavour.n_fft - self._missing, int(self.flavour.name == "v3"), self.loudness_lag,
                                self.pitch_lag, low, high, tracker.voiced_threshold, self.flavour.ref_db,
                                self.flavour.range_db, self._missing_db)
        self._tables = [np.ascontiguousarray(table, np.float32)
                        for table in (measure.window, measure.power_weights, measure.weighting_db)]
        handle = self._lib.tb_analysis_create(ctypes.byref(config), self._crepe._handle,
                                              *(table.ctypes.data for table in self._tables))
        if not handle:
            raise NativeUnavailable("the native kernel could not hold the live analysis (out of memory)")
        self._handle = ctypes.c_void_p(handle)
        self._out = np.empty((3, CHUNK // self.hop + 1), np.float32)

    def __del__(self):
        if getattr(self, "_handle", None) is not None:
            self._lib.tb_analysis_destroy(self._handle)
            self._handle = None

    def reset(self) -> None:
        """Forgets all input: the kernel holds the history (none of the numpy analyzer's state is kept here)."""
        if self._handle is not None:  # None while the base class sets up; tb_analysis_create starts reset
            self._lib.tb_analysis_reset(self._handle)

    def process(self, block: np.ndarray) -> Features:
        """Consumes a block of samples ([n], or [n, channels], downmixed), returns the frames it completes."""
        block = np.ascontiguousarray(mono(block))
        parts = [self._chunk(block[start:start + CHUNK]) for start in range(0, len(block), CHUNK)]
        if len(parts) == 1:
            return parts[0]
        return Features.concatenate(parts, self.frame_rate)

    def _chunk(self, samples: np.ndarray) -> Features:
        out = self._out
        count = self._lib.tb_analysis_process(self._handle, samples.ctypes.data, len(samples), out[0].ctypes.data,
                                              out[1].ctypes.data, out[2].ctypes.data)
        if count < 0:  # more samples than a call takes: process() cuts blocks to CHUNK, so a bug
            raise RuntimeError(f"tb_analysis_process refused {len(samples)} samples (at most {CHUNK})")
        f0, confidence, loudness = out[:, :count].copy()
        return Features(f0, confidence, loudness, self.frame_rate)
