"""The TimbreModel: preprocessing, decoder, harmonic and noise synths, reverb.

It renders a whole signal at once (offline) or streams block by block (live); the
stream's joined output equals the whole-signal render delayed by one hop (4 ms at
16 kHz / 250 frames per second), because each hop of audio interpolates between a frame
and the next. The model knows nothing of the engine that drives it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from tuibend.compiled import flat_call
from tuibend.dsp import core, effects, spectral, synths
from tuibend.dsp.flavours import LOUDNESS_FLAVOURS
from tuibend.model.config import ModelConfig
from tuibend.model.decoder import Decoder
from tuibend.model.layout import BendHook, bend_points, check_weights, no_bend
from tuibend.model.statistics import DatasetStatistics


def _batched(x) -> tuple[tf.Tensor, bool]:
    """[frames] or [b, frames] -> ([b, frames, 1], was_1d)."""
    x = core.f32(x)
    was_1d = x.shape.rank == 1
    x = x[tf.newaxis] if was_1d else x
    return x[..., tf.newaxis], was_1d


def _unbatched(x: tf.Tensor, was_1d: bool) -> np.ndarray:
    return x.numpy()[0] if was_1d else x.numpy()


class TimbreModel:
    """A trained DDSP timbre model; thin: configuration, weights and the functions over them."""

    def __init__(self, config: ModelConfig, weights: Mapping[str, np.ndarray],
                 statistics: DatasetStatistics | None = None):
        self.config = config.validate()
        check_weights(config, weights)
        self.decoder = Decoder(config.decoder, weights)
        ir = weights.get("reverb/ir") if config.reverb else None
        self.reverb_ir = tf.Variable(np.asarray(ir, np.float32), name="reverb_ir") if ir is not None else None
        self.statistics = statistics or DatasetStatistics()

    @property
    def bend_points(self) -> dict[str, str]:
        """The decoder's bend points, in signal order, with a description of each."""
        return bend_points(self.config.decoder)

    def weights(self) -> dict[str, np.ndarray]:
        """All weights by name (the model file's contents)."""
        weights = self.decoder.weights()
        if self.reverb_ir is not None:
            weights["reverb/ir"] = self.reverb_ir.numpy()
        return weights

    # --- preprocessing -------------------------------------------------------------
    def loudness(self, audio) -> np.ndarray:
        """Loudness in dB at the frame rate, exactly as this model's preprocessor computes it."""
        audio = core.f32(audio)
        was_1d = audio.shape.rank == 1
        audio = audio[tf.newaxis] if was_1d else audio
        result = self.loudness_tensor(audio)
        return result.numpy()[0] if was_1d else result.numpy()

    def loudness_tensor(self, audio: tf.Tensor) -> tf.Tensor:
        """[b, n] -> [b, n // hop] dB (v3 resamples its n//hop + 1 centred frames as ddsp does)."""
        config = self.config
        flavour = LOUDNESS_FLAVOURS[config.loudness]
        db = spectral.loudness(audio, config.sample_rate, config.frame_rate, flavour.n_fft, flavour.ref_db,
                               flavour.range_db, flavour.name)
        n_frames = int(audio.shape[-1]) // config.hop
        if int(db.shape[-1]) != n_frames:
            db = core.resample_frames(db[..., tf.newaxis], n_frames)[..., 0]
        return db

    def scale_inputs(self, f0_hz: tf.Tensor, loudness_db: tf.Tensor) -> dict[str, tf.Tensor]:
        """The decoder's inputs from f0 [b, t, 1] and loudness [b, t, 1]."""
        return {"f0_scaled": core.hz_to_midi(f0_hz) / self.config.f0_range,
                "ld_scaled": loudness_db / self.config.ld_range + 1.0}

    # --- decoder and controls --------------------------------------------------------
    def raw_controls(self, f0_hz: tf.Tensor, loudness_db: tf.Tensor, hook: BendHook = no_bend,
                     state: tf.Tensor | None = None, unroll: bool = False) -> tuple[dict, tf.Tensor]:
        """Decoder outputs before scaling, from [b, t, 1] inputs."""
        state = self.decoder.initial_state(tf.shape(f0_hz)[0]) if state is None else state
        return self.decoder(self.scale_inputs(f0_hz, loudness_db), state, hook, unroll)

    def scale_controls(self, raw: Mapping[str, tf.Tensor], f0_hz: tf.Tensor) -> dict[str, tf.Tensor]:
        """What the synths consume, from raw decoder outputs."""
        controls = synths.harmonic_controls(raw["amps"], raw["harmonics"], f0_hz, self.config.sample_rate)
        controls["noise_magnitudes"] = synths.noise_controls(raw["noise"], self.config.noise_initial_bias)
        return controls

    def controls(self, f0_hz, loudness_db, hook: BendHook = no_bend) -> dict[str, np.ndarray]:
        """Scaled synth controls for a whole signal: ``amplitudes`` (frames, 1),
        ``harmonic_distribution`` (frames, n_harmonics), ``noise_magnitudes`` (frames, n_bands).
        Inputs are [frames] (or [b, frames]); outputs drop the batch axis likewise."""
        f0, was_1d = _batched(f0_hz)
        loudness_db, _ = _batched(loudness_db)
        raw, _ = self.raw_controls(f0, loudness_db, hook)
        return {name: _unbatched(value, was_1d) for name, value in self.scale_controls(raw, f0).items()}

    # --- synthesis ---------------------------------------------------------------------
    def synthesize(self, controls: Mapping, f0_hz, noise=None, seed: int = 0,
                   precise_phase: bool = True) -> dict[str, np.ndarray]:
        """Audio from scaled controls: ``harmonic``, ``noise``, ``dry`` (their sum) and ``audio``
        (after the reverb, when the model has one). ``noise`` is the white noise to filter
        ([n_samples], uniform in [-1, 1) by default, seeded)."""
        f0, was_1d = _batched(f0_hz)
        tensors = {name: core.f32(value)[tf.newaxis] if was_1d else core.f32(value)
                   for name, value in controls.items()}
        n_samples = int(f0.shape[1]) * self.config.hop
        if noise is None:
            noise = core.uniform_noise([int(f0.shape[0]), n_samples], [seed, 0])
        else:
            noise = core.f32(noise)
            noise = noise[tf.newaxis] if noise.shape.rank == 1 else noise
        signals = self._synthesize(tensors, f0, noise, precise_phase)
        return {name: _unbatched(value, was_1d) for name, value in signals.items()}

    def _synthesize(self, controls, f0, noise, precise_phase=True) -> dict[str, tf.Tensor]:
        config = self.config
        harmonic = synths.harmonic_synth(controls["amplitudes"], controls["harmonic_distribution"], f0,
                                         int(noise.shape[-1]), config.sample_rate, config.amp_resample_method,
                                         precise_phase)
        filtered = synths.filtered_noise(controls["noise_magnitudes"], noise)
        dry = harmonic + filtered
        audio = effects.reverb(dry, self.reverb_ir) if self.reverb_ir is not None else dry
        return {"harmonic": harmonic, "noise": filtered, "dry": dry, "audio": self.at_output_gain(audio)}

    def at_output_gain(self, audio: tf.Tensor) -> tf.Tensor:
        """The synthesised audio at the model's calibrated output level."""
        return audio if self.config.output_gain_db == 0.0 else audio * self.config.output_gain

    def render(self, f0_hz, loudness_db, hook: BendHook = no_bend, seed: int = 0) -> np.ndarray:
        """Whole-signal resynthesis from features: f0 and loudness at the frame rate -> audio."""
        f0, was_1d = _batched(f0_hz)
        loudness_db, _ = _batched(loudness_db)
        noise = core.uniform_noise([int(f0.shape[0]), int(f0.shape[1]) * self.config.hop], [seed, 0])
        return _unbatched(self._render(f0, loudness_db, noise, hook), was_1d)

    def _render(self, f0, loudness_db, noise, hook: BendHook = no_bend) -> tf.Tensor:
        raw, _ = self.raw_controls(f0, loudness_db, hook)
        return self._synthesize(self.scale_controls(raw, f0), f0, noise)["audio"]

    def stream(self, block_frames: int, hook: BendHook = no_bend, batch: int = 1, jit: bool = True,
               seed: int = 0) -> ModelStream:
        """A streaming renderer for blocks of ``block_frames`` frames (``block_frames * hop`` samples)."""
        return ModelStream(self, block_frames, hook, batch, jit, seed)


class StreamState(NamedTuple):
    """Everything a stream carries between blocks."""

    gru: tf.Tensor
    harmonic: synths.HarmonicState
    noise: synths.FilterState
    reverb: effects.ReverbState
    block_index: tf.Tensor  # int64 [], seeds the noise of each block


class ModelStream:
    """Renders a model block by block with GRU, oscillator, filter and reverb state carried.

    ``step`` takes F frames of f0 and loudness and returns F*hop samples. The output is
    the whole-signal render delayed by :attr:`latency_samples`; the very first hop is silent.
    """

    def __init__(self, model: TimbreModel, block_frames: int, hook: BendHook, batch: int, jit: bool, seed: int):
        if block_frames < 1:
            raise ValueError("a block holds at least one frame")
        self.model = model
        self.block_frames = block_frames
        self.block_samples = block_frames * model.config.hop
        self.bfloat16 = False  # TensorFlow's stream runs float32 throughout
        self.batch = batch
        self.seed = seed
        self.hook = hook
        self.latency_samples = model.config.hop
        self._partitions = (effects.partition_spectra(model.reverb_ir, self.block_samples)
                            if model.reverb_ir is not None else None)
        # The state lives in variables the compiled step reads and updates in place: a call passes
        # two small tensors instead of the whole state (about 0.3 ms a block less, measured).
        self._state = tf.nest.map_structure(lambda value: tf.Variable(value, trainable=False),
                                            self._initial_state())
        frames = tf.TensorSpec([batch, block_frames, 1], tf.float32)
        self._compiled = tf.function(self._step_graph, jit_compile=jit)
        self._step_seeded = flat_call(self._compiled, frames, frames)
        self._step_given = None  # traced on first use: only tests bring their own noise

    def _initial_state(self) -> StreamState:
        config = self.model.config
        partitions = self._partitions if self._partitions is not None else tf.zeros([2, self.block_samples + 1],
                                                                                        tf.complex64)
        return StreamState(
            self.model.decoder.initial_state(self.batch),
            synths.harmonic_initial_state(self.batch, config.decoder.n_harmonics),
            synths.noise_initial_state(self.batch, config.decoder.n_noise_bands, config.hop),
            effects.reverb_initial_state(self.batch, partitions),
            tf.constant(0, tf.int64),
        )

    def reset(self) -> None:
        """Back to silence: GRU state, phase, filter and reverb tails all cleared."""
        tf.nest.map_structure(lambda variable, value: variable.assign(value), self._state, self._initial_state())

    def continue_from(self, other: ModelStream) -> None:
        """Takes over another stream's state (same model and block size), so a chain can change
        between two blocks with no click: GRU, phases, filter and reverb tails carry on."""
        tf.nest.map_structure(lambda mine, theirs: mine.assign(theirs.read_value()), self._state, other._state)

    def step(self, f0_hz, loudness_db, noise=None) -> np.ndarray:
        """One block: f0 and loudness of ``block_frames`` frames ([F] or [b, F]) -> audio.

        ``noise`` (optional, [F*hop] or [b, F*hop]) replaces the stream's own seeded noise."""
        f0 = np.asarray(f0_hz, np.float32)
        if f0.shape[-1] != self.block_frames:
            raise ValueError(f"this stream takes blocks of {self.block_frames} frames, got {f0.shape[-1]}")
        frames = (self.batch, self.block_frames, 1)
        inputs = [tf.constant(f0.reshape(frames)), tf.constant(np.asarray(loudness_db, np.float32).reshape(frames))]
        if noise is None:
            audio = self._step_seeded(*inputs)
        else:
            noise = tf.constant(np.asarray(noise, np.float32).reshape(self.batch, self.block_samples))
            if self._step_given is None:
                self._step_given = flat_call(self._compiled, *inputs, noise)
            audio = self._step_given(*inputs, noise)
        return audio.numpy()[0] if f0.ndim == 1 else audio.numpy()

    def _step_graph(self, f0, loudness_db, noise=None):
        state = tf.nest.map_structure(lambda variable: variable.read_value(), self._state)
        audio, new_state = self._render_block(f0, loudness_db, noise, state)
        tf.nest.map_structure(lambda variable, value: variable.assign(value), self._state, new_state)
        return audio

    def _render_block(self, f0, loudness_db, noise, state: StreamState) -> tuple[tf.Tensor, StreamState]:
        model, hop = self.model, self.model.config.hop
        # Live blocks (a few frames) unroll the GRU; long offline blocks loop over it.
        raw, gru = model.raw_controls(f0, loudness_db, self.hook, state.gru, unroll=self.block_frames <= 16)
        controls = model.scale_controls(raw, f0)
        if noise is None:  # a fresh seeded block of uniform noise
            noise = core.uniform_noise([self.batch, self.block_samples],
                                       tf.stack([tf.constant(self.seed, tf.int64), state.block_index]))
        harmonic, harmonic_state = synths.harmonic_synth_step(
            state.harmonic, controls["amplitudes"], controls["harmonic_distribution"], f0, hop,
            model.config.sample_rate, model.config.amp_resample_method)
        filtered, noise_state = synths.filtered_noise_step(state.noise, controls["noise_magnitudes"], noise, hop)
        filtered = synths.silence_first_hop(filtered, hop, state.block_index > 0)
        audio, reverb_state = harmonic + filtered, state.reverb
        if self._partitions is not None:
            audio, reverb_state = effects.reverb_step(state.reverb, audio, self._partitions)
        carried = StreamState(gru, harmonic_state, noise_state, reverb_state, state.block_index + 1)
        return model.at_output_gain(audio), carried
