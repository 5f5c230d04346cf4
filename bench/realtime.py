"""Real-time factor and latency of the live engine's block path, beside whole-signal 4-second calls.

Run: ``python bench/realtime.py`` (about 3 minutes on a quiet 2-core machine). It answers the
question the live instrument depends on: with a chain of five bends, how many times faster than
real time does one thread compute a block, and how long after a sound goes in does it come out?

Each block is computed exactly as the engine's model thread computes it
(:meth:`tuibend.engine.engine.Engine._process`), without audio devices: a fader moves (``BendController.set``),
the controller writes the block's per-frame bend values (``advance``), the native kernel (``NativeStream.step``,
the engine's default) or TensorFlow's XLA-compiled model stream (``ModelStream.step``) renders the block, then
the non-finite guard, DC blocker and limiter (in the kernel's one call with the native kernel, in numpy with
TensorFlow's). Live input adds the streaming pitch (CREPE tiny) and loudness analysis of the same block
(``LiveAnalysis.process``), timed on its own so the table shows the model alone (a prepared file) and the model
with analysis (a microphone). The analysis runs where the model does: in the native kernel beside it (CREPE in
bfloat16 with the bfloat16 layers, in AMX tiles where the CPU has them; float32 vectors with the float32 ones),
in TensorFlow beside its stream. Both paths are also paced at real time (one block per block period, as the
engine runs them).

The engine itself is measured too (:func:`engine_seconds`): :class:`Engine` on the clock-paced device, its
microphone hearing the same contour (or the contour as a prepared file), read by its own load meter (the median
of ``--repeats`` runs, the file and the microphone taking turns). That figure
holds all its model thread does a block (the gate and level match, the telemetry, the ring and the events log
besides the path above), and the microphone goals are judged on it.

Whole-signal rendering is measured beside it: every 4 s, one fresh whole-signal render of the 4 s
block (``TimbreModel.render``: GRU and phases start from zero each call), so a sound can only come
out once its 4 s block is complete and computed.

The full-size model is magenta-ddsp's solo instrument imported from ``../shared/fixtures`` (or
``$TUIBEND_FIXTURES``, or ``--full``); the small one is the bundled ``tuibend/data/models/choir``. A real-time
factor is seconds of audio per second of computation, the median of ``--repeats`` runs over
``--seconds`` of audio after a warm-up that compiles, measured in this run on this machine; the
latency is what the engine reports (``Engine.latency_ms``, live input, no safety margin).

A yardstick follows the table: a plain Keras decoder of each size under XLA (``keras_decoder``), the measure the
goals were set against, timed in the same run back to back and paced, with the goals read as multiples of its
speed. A memory anchor ends the output: a plain array of half the per-core cache and of each model's weights summed
back to back and one block period apart, what this machine charges for reading again after a pause (beside a
few milliseconds of arithmetic that reads no memory, timed the same way), so that paced figures from different
machines can be read side by side.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tuibend  # noqa: E402
from tuibend.bend.registry import Bend  # noqa: E402
from tuibend.bend.rig import BendController, BendRig, control_scene, numpy_fill  # noqa: E402
from tuibend.bend.scene import Scene  # noqa: E402
from tuibend.dsp.flavours import LOUDNESS_FLAVOURS  # noqa: E402
from tuibend.engine.engine import Engine, EngineSettings  # noqa: E402
from tuibend.engine.session import live_input  # noqa: E402
from tuibend.engine.sources import FilePlayer, LiveAnalysis  # noqa: E402
from tuibend.model.config import DecoderConfig  # noqa: E402
from tuibend.model.layout import point_widths  # noqa: E402
from tuibend.model.timbre import TimbreModel  # noqa: E402
from tuibend.native.control import KernelFill  # noqa: E402
from tuibend.native.safety import safety_chain  # noqa: E402
from tuibend.native.stream import NativeStream  # noqa: E402
from tuibend.pitch.analysis import Features  # noqa: E402
from tuibend.places import bundled  # noqa: E402

BLOCKS = (64, 256, 1024)  # samples at 16 kHz: 4, 16 and 64 ms
ENGINE_BLOCK = 256  # the engine's default
SEED_BLOCK_SECONDS = 4.0
PACED_SECONDS = 4.0  # audio played at real time per paced measurement
GOALS = {("full", 256): 25.0, ("small", 256): 60.0}  # the model's target real-time factors, back to back
MIC_GOALS = {("full", 256): 25.0, ("small", 256): 40.0}  # the whole microphone path's, paced at real time
# Where the goals were set, the plain Keras decoder (keras_decoder) of each size ran a 256-sample block at these
# real-time factors: each goal asks for a multiple of its speed, which this run measures again beside the engine.
YARDSTICK_WHERE_SET = {"full": 13.7, "small": 27.0}
BENDS = [
    Bend("fc1", "oscillate", 0.3, params={"freq": 3.0, "depth": 0.5}),
    Bend("gru", "ablate", 0.2),
    Bend("fc2", "scale", 0.2, params={"gain": 1.5}),
    Bend("fc1", "noise", 0.1, params={"amount": 0.2}),
    Bend("harmonics", "smooth", 0.3),
]
KERNELS = {"native": "stream, native kernel (bfloat16 layers: the engine's default)",
           "native-float32": "stream, native kernel (float32)", "tensorflow": "stream, TensorFlow XLA"}
MOVED_FADER = (0, "proportion")  # moved every block, as a performer's hand would


@dataclass
class Timing:
    """Median seconds of computation per block: the model's path alone (a prepared file), and
    for live input the model's path and the analysis as they run interleaved."""

    model: float
    live_model: float
    analysis: float
    paced: float  # the model's path for a prepared file, one block per block period as the engine runs it
    paced_live: float  # analysis and model for live input, paced the same way


@dataclass
class Row:
    model: str
    work: str
    block_samples: int
    sample_rate: int
    timing: Timing
    latency_ms: float
    goal: float | None = None

    @property
    def block_seconds(self) -> float:
        return self.block_samples / self.sample_rate

    @property
    def model_factor(self) -> float:
        return self.block_seconds / self.timing.model

    @property
    def live_factor(self) -> float:
        return self.block_seconds / (self.timing.live_model + self.timing.analysis)

    @property
    def paced_live_factor(self) -> float:
        return self.block_seconds / self.timing.paced_live


def features(seconds: float, frame_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """A sung-like contour: 220 Hz with a 5 Hz vibrato and a slow glide, loudness swelling around -30 dB."""
    t = np.arange(int(seconds * frame_rate)) / frame_rate
    f0 = 220.0 * 2 ** (0.5 * np.sin(2 * np.pi * 0.1 * t)) * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
    loudness = -30.0 + 10.0 * np.sin(2 * np.pi * 0.3 * t)
    return f0.astype(np.float32), loudness.astype(np.float32)


def voice(f0: np.ndarray, loudness: np.ndarray, hop: int, sample_rate: int) -> np.ndarray:
    """Audio for the live analysis to hear: ten harmonics following the same contour."""
    f0_samples = np.repeat(f0.astype(np.float64), hop)
    amplitude = 0.3 * 10 ** ((np.repeat(loudness, hop) + 30.0) / 20.0)
    phase = 2 * np.pi * np.cumsum(f0_samples) / sample_rate
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 11))
    return (amplitude * harmonics / 3.0).astype(np.float32)


def fader_positions(count: int) -> np.ndarray:
    """One position of the moved fader per block: a slow sweep between 0.1 and 0.5."""
    return (0.3 + 0.2 * np.sin(np.arange(count) * 0.05)).astype(np.float32)


def engine_latency_ms(model: TimbreModel, live: LiveAnalysis, block_samples: int) -> float:
    """What :attr:`Engine.latency_ms` reports for live input at this block, margin 0, device at the
    model's rate: one block queued, one hop of the model, the analysis' loudness lag. The engine's
    own property computes it, on the few attributes it reads."""
    rate = model.config.sample_rate
    engine = SimpleNamespace(_prefill=block_samples, device=SimpleNamespace(sample_rate=rate), model=model,
                             sample_rate=rate, source=live, live=True)
    return Engine.latency_ms.fget(engine)


def block_path(model: TimbreModel, block_samples: int, seconds: float, kernel: str) -> tuple[Callable, int]:
    """The engine's block path (fader, controller, the kernel's step, guard, DC blocker, limiter) over ``seconds``
    of a sung-like input, and its number of blocks. ``play(count, live, paced)`` runs ``count`` blocks, each after
    ``live``'s analysis of the same block when one is given (as for a microphone), back to back or one block period
    apart (``paced``: caches cool between blocks as they do in the engine), and times the two parts.
    ``kernel``: one of :data:`KERNELS`."""
    config = model.config
    block_frames = block_samples // config.hop
    native = kernel.startswith("native")
    rig = BendRig(BENDS, point_widths(config.decoder), block_frames, graph=not native)
    controller = BendController(rig, config.frame_rate, fill=KernelFill if native else numpy_fill)
    stream = (NativeStream(model, rig, block_frames, bfloat16=kernel == "native") if native
              else model.stream(block_frames, hook=rig.hook))
    f0, loudness = features(seconds, config.frame_rate)
    audio = voice(f0, loudness, config.hop, config.sample_rate)
    n_blocks = len(f0) // block_frames
    faders = fader_positions(n_blocks)

    def play(count: int, live: LiveAnalysis | None = None, paced: bool = False) -> Timing:
        stream.reset()
        controller.rig.reset()
        if live is not None:
            live.reset()
        safety = safety_chain(config.sample_rate, native)  # in the kernel with it, as the engine runs them
        model_seconds = analysis_seconds = 0.0
        deadline = time.perf_counter()
        for index in range(count):
            frames = slice(index % n_blocks * block_frames, (index % n_blocks + 1) * block_frames)
            started = time.perf_counter()
            if live is not None:
                live.process(audio[(index % n_blocks) * block_samples:(index % n_blocks + 1) * block_samples])
            analysed = time.perf_counter()
            controller.set(*MOVED_FADER, float(faders[index % n_blocks]))
            controller.advance()
            out = stream.step(f0[frames], loudness[frames])
            if safety.process(out) is None:
                safety.reset()
            finished = time.perf_counter()
            analysis_seconds += analysed - started
            model_seconds += finished - analysed
            if paced:
                deadline += block_samples / config.sample_rate
                time.sleep(max(0.0, deadline - time.perf_counter()))
        per_block = model_seconds / count
        return Timing(per_block, per_block, analysis_seconds / count, per_block, per_block + analysis_seconds / count)

    return play, n_blocks


def stream_timing(model: TimbreModel, live: LiveAnalysis, block_samples: int, seconds: float,
                  repeats: int, kernel: str) -> Timing:
    """:func:`block_path` alone, as it runs for a prepared file, and after the live analysis of each block, as it
    runs for a microphone (interleaved, the two slow each other down: about 2x for the small model's step,
    measured), with the analysis timed apart; back to back (median of ``repeats``) and paced."""
    play, n_blocks = block_path(model, block_samples, seconds, kernel)
    play(min(n_blocks, max(8, n_blocks // 20)), live)  # compiles the step and the tracker's graph
    alone = np.median([play(n_blocks).model for _ in range(repeats)])
    live_runs = [play(n_blocks, live) for _ in range(repeats)]
    paced_blocks = round(PACED_SECONDS * model.config.sample_rate / block_samples)
    paced = play(paced_blocks, paced=True)
    paced_live = play(paced_blocks, live, paced=True)
    return Timing(float(alone), float(np.median([run.model for run in live_runs])),
                  float(np.median([run.analysis for run in live_runs])), paced.model, paced_live.paced_live)


def whole_signal_timing(model: TimbreModel, live: LiveAnalysis, repeats: int) -> Timing:
    """The whole-signal approach: each 4 s block one fresh whole-signal render with the same bends (state
    reset: nothing carries from the previous block), and the analysis of the 4 s of input."""
    config = model.config
    block_frames = int(SEED_BLOCK_SECONDS * config.frame_rate)
    block_samples = block_frames * config.hop
    controller: BendController = control_scene(BENDS, {}, point_widths(config.decoder), block_frames,
                                               config.frame_rate)
    f0, loudness = features(SEED_BLOCK_SECONDS * (repeats + 1), config.frame_rate)
    audio = voice(f0, loudness, config.hop, config.sample_rate)
    faders = fader_positions(repeats + 1)
    live.reset()
    runs = []
    for index in range(repeats + 1):  # the first is a warm-up
        frames = slice(index * block_frames, (index + 1) * block_frames)
        started = time.perf_counter()
        live.process(audio[index * block_samples:(index + 1) * block_samples])
        analysed = time.perf_counter()
        controller.set(*MOVED_FADER, float(faders[index]))
        controller.advance()
        model.render(f0[frames], loudness[frames], hook=controller.rig.hook)
        finished = time.perf_counter()
        if index:
            runs.append(Timing(finished - analysed, finished - analysed, analysed - started, finished - analysed,
                               finished - started))
    model_seconds = float(np.median([run.model for run in runs]))
    return Timing(model_seconds, model_seconds, float(np.median([run.analysis for run in runs])), model_seconds,
                  float(np.median([run.paced_live for run in runs])))


def model_options(parser: argparse.ArgumentParser) -> None:
    """The two models the live benches measure: ``--full`` and ``--small`` folders."""
    parser.add_argument("--full", help="the full-size tuibend model folder (default: the imported ddsp fixture)")
    parser.add_argument("--small", default=str(bundled("models", "choir")), help="the small model folder")


def full_model(path: str | None) -> TimbreModel:
    if path:
        return tuibend.load_model(path)
    checkpoint = Path(os.environ.get("TUIBEND_FIXTURES", REPO.parent / "shared" / "fixtures")) / "ddsp" / \
        "solo_instrument_ckpt"
    with tempfile.TemporaryDirectory() as folder:
        return tuibend.load_model(tuibend.import_ddsp(checkpoint, Path(folder) / "solo", name="solo"))


def parameters(model: TimbreModel) -> int:
    """Weights in the model file, the reverb's impulse response included."""
    return sum(weight.size for weight in model.weights().values())


def measure(label: str, size: str, model: TimbreModel, seconds: float, repeats: int) -> list[Row]:
    rate = model.config.sample_rate
    rows = []
    for kernel, work in KERNELS.items():
        # the analysis the engine runs with this kernel (live_input, as the command line builds it)
        live = live_input(model, "crepe-tiny", kernel=kernel.split("-")[0], bfloat16=kernel == "native")
        for block in BLOCKS:
            timing = stream_timing(model, live, block, seconds, repeats, kernel)
            rows.append(Row(label, work, block, rate, timing, engine_latency_ms(model, live, block),
                            GOALS.get((size, block))))
            print(f"  {label}, {work}, {block}-sample blocks: {rows[-1].model_factor:.1f}x", file=sys.stderr,
                  flush=True)
    timing = whole_signal_timing(model, live_input(model, "crepe-tiny", kernel="tensorflow"), repeats)
    rows.append(Row(label, "whole signal: fresh render per 4 s", int(SEED_BLOCK_SECONDS * rate), rate, timing,
                    1000.0 * (SEED_BLOCK_SECONDS + timing.model + timing.analysis)))
    print(f"  {label}, whole signal: {rows[-1].model_factor:.1f}x", file=sys.stderr, flush=True)
    return rows


def goal_text(row: Row) -> str:
    if row.goal is None:
        return ""
    return f"model {row.goal:.0f}x: {'met' if row.model_factor >= row.goal else 'missed'}"


def engine_seconds(model: TimbreModel, microphone: bool, seconds: float) -> float:
    """Seconds a 256-sample block takes the engine as it runs: :class:`Engine` itself on the clock-paced device,
    with the 5-bend chain, its first fader moved every block period from another thread (as MIDI moves it); the
    device's microphone hears :func:`voice` (the live path), or a prepared file of the same contour plays. The
    median of the engine's own load meter (the mean of its last 64 blocks: everything its model thread does a
    block), read once a second after two seconds of warm-up."""
    config = model.config
    f0, loudness = features(max(seconds, 10.0), config.frame_rate)
    audio = voice(f0, loudness, config.hop, config.sample_rate)
    settings = EngineSettings(block=ENGINE_BLOCK, device="none", check_speed=False)
    if microphone:
        source = live_input(model, "crepe-tiny")
        settings = replace(settings, virtual_microphone=audio)
    else:
        floor = -LOUDNESS_FLAVOURS[config.loudness].range_db
        source = FilePlayer("contour", audio, Features(f0, np.ones_like(f0), loudness, config.frame_rate), config.hop,
                            floor)
    engine = Engine(model, source, [Scene("five bends", BENDS)], settings)
    engine.start()
    period = ENGINE_BLOCK / config.sample_rate
    readings = []
    try:
        for index in range(round((2.0 + seconds) / period)):
            engine.set(*MOVED_FADER, float(fader_positions(index + 1)[-1]), "midi")
            time.sleep(period)
            if index * period >= 2.0 and (index + 1) % round(1.0 / period) == 0:
                readings.append(engine.telemetry.load)
    finally:
        engine.stop()
    if engine.error is not None:
        raise SystemExit(f"realtime: the engine stopped: {engine.error}")
    return float(np.median(readings)) * period


def print_engine(running: dict[str, tuple[str, float, float, float]]) -> None:
    """The engine as it runs, with the microphone path's goals."""
    print(f"\nThe engine as it runs ({ENGINE_BLOCK}-sample blocks, the clock-paced device, the native kernel's "
          "defaults): its own load meter, the whole of what its model thread does a block (the live analysis, "
          "requests, the controller, the step, the gate and level match, the safety chain, the ring, the telemetry "
          "and the events log), the median of --repeats runs, the file and the microphone taking turns. The "
          "microphone path's goals are held here.\n")
    print("| model | prepared file: ms per block | real-time factor | microphone: ms per block | real-time factor "
          "| microphone goal |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for size, (label, block_seconds, file_seconds, mic_seconds) in running.items():
        goal = MIC_GOALS[(size, ENGINE_BLOCK)]
        factor = block_seconds / mic_seconds
        print(f"| {label} | {1000 * file_seconds:.2f} | {block_seconds / file_seconds:.1f}x | {1000 * mic_seconds:.2f} "
              f"| {factor:.1f}x | {goal:.0f}x: {'met' if factor >= goal else 'missed'} |")


def print_yardstick(yardsticks: dict[str, tuple[Row, tuple[float, float]]],
                    running: dict[str, tuple[str, float, float, float]]) -> None:
    """The goals as multiples of the plain Keras decoder's speed, which this run measured beside the engine."""
    print(f"\nYardstick: a plain Keras decoder of each size ({ENGINE_BLOCK}-sample blocks, XLA, one thread; "
          "the decoder alone: no synthesis, bends or analysis), in this run. Where the goals were set it ran at "
          + " and ".join(f"{factor:g}x ({size})" for size, factor in YARDSTICK_WHERE_SET.items())
          + "; each goal is read here as the same multiple of its speed. The engine's default path: the native "
          "kernel, bfloat16 layers.\n")
    print("| model | Keras decoder ms: back to back | paced | its real-time factor | model path: x its speed "
          "(goal) | the engine's microphone path: x its speed paced (goal) |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    for size, (row, (back_to_back, paced)) in yardsticks.items():
        model_goal = GOALS[(size, ENGINE_BLOCK)] / YARDSTICK_WHERE_SET[size]
        mic_goal = MIC_GOALS[(size, ENGINE_BLOCK)] / YARDSTICK_WHERE_SET[size]
        model_multiple, mic_multiple = back_to_back / row.timing.model, paced / running[size][3]
        print(f"| {row.model} | {1000 * back_to_back:.2f} | {1000 * paced:.2f} | "
              f"{row.block_seconds / back_to_back:.1f}x | {model_multiple:.2f} ({model_goal:.2f}: "
              f"{'met' if model_multiple >= model_goal else 'missed'}) | {mic_multiple:.2f} ({mic_goal:.2f}: "
              f"{'met' if mic_multiple >= mic_goal else 'missed'}) |")


def l2_bytes() -> int | None:
    """The per-core level-2 cache, as Linux reports it (None elsewhere)."""
    try:
        text = Path("/sys/devices/system/cpu/cpu0/cache/index2/size").read_text().strip()
    except OSError:
        return None
    units = {"K": 2 ** 10, "M": 2 ** 20}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def seconds_per_call(call, count: int, period: float | None = None) -> list[float]:
    """Seconds each of ``count`` calls took, back to back or one ``period`` apart (from the first call's start,
    as the engine's blocks come), so that between calls the caches cool as they do in the engine."""
    times, deadline = [], time.perf_counter()
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
        if period is not None:
            deadline += period
            time.sleep(max(0.0, deadline - time.perf_counter()))
    return times


def anchor_times(call, block_seconds: float, count: int = 200) -> tuple[float, float]:
    """Median microseconds of ``call``, back to back and one block period apart, after a warm-up."""
    seconds_per_call(call, count)
    return tuple(1e6 * float(np.median(seconds_per_call(call, count, period))) for period in (None, block_seconds))


def memory_anchor(megabytes: float, block_seconds: float) -> tuple[float, float]:
    """Microseconds to sum a float32 array of ``megabytes``, back to back and one block period apart
    (median): what the machine charges for reading a block's weights again after a pause, with no model
    in the way. Paced, whatever the per-core cache cannot hold comes back from wherever the machine's
    other work has left it."""
    return anchor_times(np.ones(int(megabytes * 2 ** 20 / 4), np.float32).sum, block_seconds)


def arithmetic(steps: int = 20000) -> float:
    """Float arithmetic on two locals and nothing else (the interpreter's loop, warm after its first steps): paced
    as fast as back to back where a pause leaves the core's speed alone and only empties its caches."""
    value, factor = 1.0, 1.0000001
    for _ in range(steps):
        value = value * factor + 1e-12
    return value


def keras_decoder(decoder: DecoderConfig, block_frames: int):
    """The yardstick the goals were set against: magenta-ddsp's RnnFcDecoder written plainly in Keras (stacks
    of dense, layer norm and leaky ReLU, a GRU carrying its state block to block), compiled with XLA. The
    decoder alone: no synthesis, no bends, no analysis. Returns a step from one block's f0 and loudness
    (numpy) to its decoder outputs (numpy)."""
    import keras

    def stack(x):
        for _ in range(decoder.layers_per_stack):
            x = keras.layers.LeakyReLU(0.2)(keras.layers.LayerNormalization()(keras.layers.Dense(decoder.ch)(x)))
        return x

    f0, loudness = (keras.Input((block_frames, 1), batch_size=1) for _ in range(2))
    state = keras.Input((decoder.rnn_channels,), batch_size=1)
    inputs = [stack(f0), stack(loudness)]
    hidden, new_state = keras.layers.GRU(decoder.rnn_channels, return_sequences=True, return_state=True)(
        keras.layers.Concatenate()(inputs), initial_state=state)
    out = keras.layers.Dense(1 + decoder.n_harmonics + decoder.n_noise_bands)(
        stack(keras.layers.Concatenate()([hidden, *inputs])))
    network = keras.Model([f0, loudness, state], [out, new_state])
    compiled = tf.function(lambda *tensors: network(list(tensors)), jit_compile=True, autograph=False)
    carried = [tf.zeros((1, decoder.rnn_channels))]

    def step(block_f0: np.ndarray, block_loudness: np.ndarray) -> np.ndarray:
        out, carried[0] = compiled(block_f0[None, :, None], block_loudness[None, :, None], carried[0])
        return out.numpy()

    return step


def yardstick_timing(model: TimbreModel, block_samples: int, seconds: float, repeats: int) -> tuple[float, float]:
    """Seconds per block of :func:`keras_decoder` at the model's size, back to back (median of ``repeats``
    runs over ``seconds`` of audio) and paced at real time, fed as the engine's stream is."""
    config = model.config
    block_frames = block_samples // config.hop
    step = keras_decoder(config.decoder, block_frames)
    f0, loudness = features(seconds, config.frame_rate)
    n_blocks, counter = len(f0) // block_frames, itertools.count()

    def one_block() -> None:
        first = next(counter) % n_blocks * block_frames
        step(f0[first:first + block_frames], loudness[first:first + block_frames])

    seconds_per_call(one_block, max(8, n_blocks // 20))  # compiles
    back_to_back = np.median([np.mean(seconds_per_call(one_block, n_blocks)) for _ in range(repeats)])
    paced = np.mean(seconds_per_call(one_block, round(PACED_SECONDS * config.sample_rate / block_samples),
                                     block_samples / config.sample_rate))
    return float(back_to_back), float(paced)


def weight_megabytes(model: TimbreModel) -> float:
    """The decoder's weights as the kernel streams them each block (bfloat16), in MiB."""
    return 2 * sum(weight.size for name, weight in model.weights().items() if name != "reverb/ir") / 2 ** 20


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    load = f", load average {os.getloadavg()[0]:.2f} at the end" if hasattr(os, "getloadavg") else ""
    return (f"{os.cpu_count()} cores ({cpu}){load}; TensorFlow {tf.__version__}, "
            "one thread (intra-op 1, inter-op 1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    model_options(parser)
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per timed run (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs, the median is kept (default 3)")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    models = {"full": full_model(args.full), "small": tuibend.load_model(args.small)}
    rows, yardsticks, running = [], {}, {}
    for size, model in models.items():
        label = f"{model.config.name} ({size}, {parameters(model) / 1e6:.1f} M)"
        turns = [(engine_seconds(model, False, args.seconds), engine_seconds(model, True, args.seconds))
                 for _ in range(args.repeats)]  # taking turns: this machine's pace drifts within minutes
        file_seconds, mic_seconds = (float(np.median(column)) for column in zip(*turns, strict=True))
        running[size] = (label, ENGINE_BLOCK / model.config.sample_rate, file_seconds, mic_seconds)
        print(f"  {label}, the engine as it runs: {running[size][1] / running[size][3]:.1f}x with a microphone",
              file=sys.stderr, flush=True)
        rows += measure(label, size, model, args.seconds, args.repeats)
        engine_row = next(row for row in rows[::-1]
                          if row.work == KERNELS["native"] and row.block_samples == ENGINE_BLOCK)
        yardsticks[size] = (engine_row, yardstick_timing(model, ENGINE_BLOCK, args.seconds, args.repeats))

    print(f"\nReal-time block path with a 5-bend chain ({', '.join(f'{b.point} {b.transform}' for b in BENDS)}), "
          "one fader moving every block, guard, DC blocker and limiter. Model: a prepared file's features; "
          "with analysis: plus streaming CREPE-tiny pitch and loudness of the same block (live input), "
          "interleaved as the engine runs them. "
          "Latency: live input, as the engine reports it (one block queued, one hop, the loudness analysis' lag); "
          "the whole-signal one's is its 4 s block plus the time to compute it.\n")
    print("| model | work | block | ms per block: file | file paced | live (model + analysis) | live paced "
          "| real-time factor: file | file paced | live | live paced | latency ms | goals |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        print(f"| {row.model} | {row.work} | {row.block_samples} ({1000 * row.block_seconds:g} ms) | "
              f"{1000 * row.timing.model:.2f} | {1000 * row.timing.paced:.2f} | "
              f"{1000 * row.timing.live_model:.2f} + {1000 * row.timing.analysis:.2f} | "
              f"{1000 * row.timing.paced_live:.2f} | "
              f"{row.model_factor:.1f}x | {row.block_seconds / row.timing.paced:.1f}x | {row.live_factor:.1f}x | "
              f"{row.paced_live_factor:.1f}x | {row.latency_ms:.0f} | {goal_text(row)} |")
    print_engine(running)
    print_yardstick(yardsticks, running)
    l2 = l2_bytes()
    sizes = [1 / 32] + ([l2 / 2 ** 20 / 2] if l2 else []) + [weight_megabytes(model) for model in models.values()]
    block_seconds = ENGINE_BLOCK / models["small"].config.sample_rate
    plain, paced = anchor_times(arithmetic, block_seconds)
    print(f"\nMemory anchor (a float32 array summed, back to back and one {1000 * block_seconds:g} ms block period "
          f"apart; per-core L2 {l2 / 2 ** 20 if l2 else float('nan'):g} MiB): "
          + "; ".join(f"{size:.3g} MiB {a:.0f} / {b:.0f} us ({b / a:.1f}x)"
                      for size, (a, b) in ((size, memory_anchor(size, block_seconds)) for size in sizes))
          + f"; arithmetic alone (no memory) {plain:.0f} / {paced:.0f} us ({paced / plain:.2f}x).")
    print(f"\nMachine: {machine()}.")


if __name__ == "__main__":
    main()
