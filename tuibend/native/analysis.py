"""The live analysis in the native kernel: a block's CREPE estimates, pitch and loudness frames in one C call.

:class:`~tuibend.pitch.analysis.StreamingAnalyzer` spends most of a live block outside CREPE's own
arithmetic: numpy calls on a few samples each (framing, a four-window FFT, interpolation), which pay for
caches the model's step has just flushed. ``block.c``'s ``tb_analysis_process`` computes the same frames,
with the same lags, in one call: CREPE through the kernel's network, the loudness through its FFT; and
``tb_analysis_live`` adds what a live input plays (:class:`~tuibend.pitch.analysis.LiveFeatures`): the downmix,
the onset pitch, the held pitch and the shift.
"""

from __future__ import annotations

import ctypes

import numpy as np

from tuibend.native import AnalysisConfig, LiveConfig, NativeUnavailable
from tuibend.native.crepe import NativeCrepe
from tuibend.pitch.analysis import (
    FRAME_RATE,
    SAMPLE_RATE,
    Features,
    LiveFrames,
    OnsetPitch,
    StreamingAnalyzer,
    mono,
    onset_rule,
)
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
        self._handle = None  # made on first use: a live input runs its own (NativeLiveFeatures)
        super().__init__(tracker, loudness, sample_rate, frame_rate)
        self._crepe = tracker.estimator  # the analysis holds its network: kept alive as long
        self._lib = self._crepe._lib
        measure = self._block_loudness
        low, high = search_bins()
        self._config = AnalysisConfig(self.hop, tracker.hop, self.flavour.n_fft, self._loudness_lead,
                                      self.flavour.n_fft - self._missing, int(self.flavour.name == "v3"),
                                      self.loudness_lag, self.pitch_lag, low, high, tracker.voiced_threshold,
                                      self.flavour.ref_db, self.flavour.range_db, self._missing_db)
        self._tables = [np.ascontiguousarray(table, np.float32)
                        for table in (measure.window, measure.power_weights, measure.weighting_db)]
        self._out = np.empty((3, CHUNK // self.hop + 1), np.float32)

    def create(self, live: LiveConfig | None = None) -> ctypes.c_void_p:
        """A kernel analysis of this shape (``live``: what a live input adds), started reset; the caller
        destroys it (``tb_analysis_destroy``)."""
        handle = self._lib.tb_analysis_create(ctypes.byref(self._config), None if live is None else ctypes.byref(live),
                                              self._crepe._handle, *(table.ctypes.data for table in self._tables))
        if not handle:
            raise NativeUnavailable("the native kernel could not hold the live analysis (out of memory)")
        return ctypes.c_void_p(handle)

    def __del__(self):
        if getattr(self, "_handle", None) is not None:
            self._lib.tb_analysis_destroy(self._handle)
            self._handle = None

    def reset(self) -> None:
        """Forgets all input: the kernel holds the history (none of the numpy analyzer's state is kept here)."""
        if self._handle is not None:  # None until first used; tb_analysis_create starts reset
            self._lib.tb_analysis_reset(self._handle)

    def live_features(self, resting_f0_hz: float | None = None, pitch_ratio: float = 1.0,
                      onset_pitch: bool = True) -> NativeLiveFeatures:
        return NativeLiveFeatures(self, resting_f0_hz, pitch_ratio, onset_pitch)

    def process(self, block: np.ndarray) -> Features:
        """Consumes a block of samples ([n], or [n, channels], downmixed), returns the frames it completes."""
        if self._handle is None:
            self._handle = self.create()
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


class NativeLiveFeatures:
    """What :class:`~tuibend.pitch.analysis.LiveFeatures` computes, in one kernel call a block
    (``tb_analysis_live``): the downmix, the analysis, the onset pitch (YIN in C), the held pitch and the shift.
    Around CREPE, a live block's Python cost about 200 us paced at real time, some 30 numpy calls on a few
    samples each (measured); here it is one call."""

    def __init__(self, analyzer: NativeAnalyzer, resting_f0_hz: float | None = None, pitch_ratio: float = 1.0,
                 onset_pitch: bool = True):
        self._handle = None
        self.analyzer = analyzer  # holds the network the kernel's analysis runs: kept alive as long
        onset = OnsetPitch(analyzer.sample_rate, analyzer.frame_rate)  # its YIN's shape, run in the kernel
        yin = onset.yin
        resting = 0.0 if resting_f0_hz is None else resting_f0_hz / pitch_ratio
        quiet_db, onset_frames = onset_rule(analyzer)
        self._lib = analyzer._lib
        self._handle = analyzer.create(LiveConfig(
            int(onset_pitch), onset_frames, yin.min_lag, yin.max_lag, yin.integration, yin.threshold,
            onset.confidence, analyzer.sample_rate, quiet_db, resting, pitch_ratio))

    def __del__(self):
        if getattr(self, "_handle", None) is not None:
            self._lib.tb_analysis_destroy(self._handle)
            self._handle = None

    def reset(self) -> None:
        self._lib.tb_analysis_reset(self._handle)

    def process(self, samples: np.ndarray) -> LiveFrames:
        samples = np.ascontiguousarray(samples, np.float32)
        channels = samples.shape[1] if samples.ndim == 2 else 1
        n = samples.size // channels
        hop = self.analyzer.hop
        dry = np.empty(n, np.float32)
        frames = np.empty((4, n // hop + 1), np.float32)  # at most this many, whatever the chunks
        f0, confidence, loudness, pitch = (row.ctypes.data for row in frames)
        count = 0
        for start in range(0, n, CHUNK):
            size = min(CHUNK, n - start)
            offset = 4 * count
            done = self._lib.tb_analysis_live(self._handle, samples.ctypes.data + 4 * start * channels, size, channels,
                                              dry.ctypes.data + 4 * start, f0 + offset, confidence + offset,
                                              loudness + offset, pitch + offset)
            if done < 0:  # the shape is checked here: a bug
                raise RuntimeError(f"tb_analysis_live refused {size} samples of {channels} channels")
            count += done
        return LiveFrames(dry, *frames[:, :count])
