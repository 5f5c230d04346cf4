"""The offline workflow: a file in, features (cached), auto-adjust, resynthesis, a file out.

Through the native kernel, from a :class:`~tuibend.model.store.ModelFile`, a render loads no TensorFlow (the
kernel's CREPE analyses a new file); TensorFlow's stream (the reference) renders where the kernel cannot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tuibend.adjust import Adjustment, adjust
from tuibend.atomic import atomic_path
from tuibend.audiofile import AudioFileError, check_output_format, read_audio, write_audio
from tuibend.bend.rig import BendController, control_scene
from tuibend.bend.scene import Scene, scene_gate
from tuibend.dynamics import Dynamics, GateSettings
from tuibend.errors import InputError, TuibendError
from tuibend.model.layout import BendHook, no_bend, point_widths
from tuibend.model.store import ModelFile
from tuibend.native import available_cores
from tuibend.native.crepe import NativeCrepe
from tuibend.pitch.analysis import Features
from tuibend.pitch.files import analyze
from tuibend.safety import Limiter

if TYPE_CHECKING:
    from tuibend.model.timbre import ModelStream, TimbreModel
    from tuibend.native.stream import NativeStream

Progress = Callable[[float], None]  # called with the fraction done, 0..1


class RenderError(TuibendError, FloatingPointError):
    """A render that went wrong in the model (non-finite samples): nothing is written."""


@dataclass
class RenderResult:
    audio: np.ndarray
    features: Features
    report: dict


# The native kernel's largest block (4096 samples at a 64-sample hop): each layer's weights stream from
# memory once a block, the GRU's recurrence alone once a frame.
NATIVE_BLOCK_FRAMES = 64
# The gate's gains, the level match and the ceiling act in blocks of the engine's largest (a render sounds
# as the engine plays, whatever the blocks its model steps in).
SHAPE_SAMPLES = 1024


def render_features(model: TimbreModel | ModelFile, features: Features, hook: BendHook = no_bend, seed: int = 0,
                    block_seconds: float = 1.0, progress: Progress | None = None, scene: Scene | None = None,
                    unit_statistics: dict | None = None, dynamics: Dynamics | None = None,
                    dry: np.ndarray | None = None, levels_db: np.ndarray | None = None,
                    native: bool = False, bfloat16: bool = False, threads: int = 1,
                    report: dict | None = None) -> np.ndarray:
    """Resynthesises features in blocks of about a second (so long files report progress); a
    scene's bends and automation run from the start of the file. ``dynamics`` (with the ``dry``
    input it matches the level of, and ``levels_db``, the input's own loudness the gate listens to
    where the features were fitted to the model) gates and levels the output as the live engine does.
    ``native``: the native kernel renders, in its largest blocks (its own noise, seeded by ``seed``;
    no ``hook``), many times faster than TensorFlow's stream, which stays the reference; ``bfloat16``:
    its layers in bfloat16 where the CPU has it, as the live engine plays them; ``threads``: how many share
    each of its blocks' batched layers (the same output to the bit; ``report["threads"]``, where a ``report`` is
    given, says how many do). A :class:`ModelFile` renders natively only."""
    widths, rate = point_widths(model.config.decoder), model.config.frame_rate
    bends, lanes = (scene.bends, scene.automation) if scene is not None else ([], {})
    if native:  # the kernel reads its rig's values, bends or none
        from tuibend.native.control import KernelFill
        from tuibend.native.stream import NativeStream

        controller = control_scene(bends, lanes, widths, NATIVE_BLOCK_FRAMES, rate, unit_statistics, graph=False,
                                   fill=KernelFill)
        stream = NativeStream(model, controller.rig, NATIVE_BLOCK_FRAMES, seed, bfloat16=bfloat16, threads=threads)
        if report is not None:
            report["threads"] = stream.threads
    else:
        block = max(1, int(block_seconds * rate))
        controller = control_scene(bends, lanes, widths, block, rate, unit_statistics) if scene is not None else None
        stream = model.stream(block, hook=controller.rig.hook if controller is not None else hook, seed=seed)
    return stream_features(stream, features, controller, progress, dynamics, dry, levels_db,
                           drone=scene is not None and scene.drone)


def stream_features(stream: ModelStream | NativeStream, features: Features, controller: BendController | None = None,
                    progress: Progress | None = None, dynamics: Dynamics | None = None,
                    dry: np.ndarray | None = None, levels_db: np.ndarray | None = None,
                    drone: bool = False) -> np.ndarray:
    """Resynthesises features through a stream (and the controller of its bends), from their start.

    A stream equals the whole-signal render delayed by one hop: it is fed one frame more (the
    last, held, as the whole signal holds it) and its first hop is dropped. Reusing one compiled
    stream for many renders (reset here) spares a compilation each: TensorFlow keeps every
    compiled executable for the life of the process.
    """
    hop, block = stream.model.config.hop, stream.block_frames
    stream.reset()
    if controller is not None:
        controller.rig.reset()
        controller.restart()
    n_frames = len(features)
    n_blocks = -(-(n_frames + 1) // block)
    padding = n_blocks * block - n_frames
    f0 = np.concatenate([features.f0_hz, np.repeat(features.f0_hz[-1:], padding)])
    loudness = np.concatenate([features.loudness_db, np.repeat(features.loudness_db[-1:], padding)])
    if dynamics is not None:
        dynamics.reset()
        levels = features.loudness_db if levels_db is None else np.asarray(levels_db, np.float32)[:n_frames]
        levels = np.concatenate([levels, np.repeat(levels[-1:], padding)])
        dry = np.zeros(n_blocks * block * hop, np.float32) if dry is None else \
            np.pad(np.asarray(dry, np.float32)[:n_blocks * block * hop], (0, max(0, n_blocks * block * hop - len(dry))))
    pieces = []
    for index in range(n_blocks):
        window = slice(index * block, (index + 1) * block)
        if controller is not None:
            controller.advance()
        if dynamics is None:
            pieces.append(stream.step(f0[window], loudness[window]))
            continue
        audio = stream.step(f0[window], dynamics.hear(loudness[window], levels[window]))
        for start in range(0, block * hop, SHAPE_SAMPLES):
            piece = slice(start, min(start + SHAPE_SAMPLES, block * hop))
            at = index * block * hop
            pieces.append(dynamics.shape(audio[piece], dry[at + piece.start:at + piece.stop], drone))
        if progress is not None:
            progress((index + 1) / n_blocks)
    return np.concatenate(pieces)[hop:hop + n_frames * hop]


def limit(audio: np.ndarray, sample_rate: int, block: int = 4096) -> np.ndarray:
    """The live engine's peak limiter over a whole render (the level match may lift a model past 0 dBFS)."""
    limiter = Limiter(sample_rate)
    return np.concatenate([limiter.process(audio[start:start + block]) for start in range(0, len(audio), block)])


def native_bfloat16() -> bool:
    """Whether the loaded kernel runs layers in bfloat16 (its build has AVX512-BF16)."""
    from tuibend.native import library

    return library().build == "avx512bf16"


def render_kernel(kernel: str, hook: BendHook = no_bend) -> str:
    """What renders a file: as :func:`tuibend.native.choose` decides, TensorFlow for a graph ``hook``."""
    from tuibend.native import NativeUnavailable, choose

    if kernel == "auto" and hook is not no_bend:
        return "tensorflow"
    try:
        return choose(kernel)[0]
    except NativeUnavailable as error:
        raise InputError(str(error)) from None


def render_file(model: TimbreModel | ModelFile, input_path: str | Path, output_path: str | Path,
                tracker: str = "crepe-tiny", adjustment: Adjustment | None = None, hook: BendHook = no_bend,
                seed: int = 0, progress: Progress | None = None, use_cache: bool = True, scene: Scene | None = None,
                unit_statistics: dict | None = None, gate: GateSettings | None = None,
                level_match: bool = True, analysis_progress: Progress | None = None,
                kernel: str = "auto", bfloat16: bool = True, threads: int | None = None) -> RenderResult:
    """Analyses (or reuses the cache), adjusts, resynthesises through the gate and the level match
    (as the live engine plays), and writes ``output_path`` atomically. ``kernel``: "native", "tensorflow",
    or "auto" (native where it loads and no ``hook`` is given; ``report["kernel"]`` says which ran).
    ``bfloat16``: the kernel's layers in bfloat16 where the CPU has it (the sound the engine plays,
    0.3-0.7 % RMS off float32, about twice as fast; ``report["layers"]`` says which ran). Through the kernel,
    a file is analysed by the kernel's CREPE too (in float32: TensorFlow's within float rounding). ``threads``:
    how many threads the kernel's analysis and blocks share (default: every core this process may use;
    ``report["threads"]`` says how many share the blocks; TensorFlow's stream runs on its own pool)."""
    check_output_format(output_path)
    native = render_kernel(kernel, hook) == "native"
    threads = available_cores() if threads is None else threads
    features = analyze(input_path, tracker=tracker, loudness=model.config.loudness, use_cache=use_cache,
                       progress=analysis_progress, crepe=partial(NativeCrepe, threads=threads) if native else None)
    if len(features) < 2:
        raise AudioFileError(f"{input_path}: too short to render (under 8 ms)")
    adjusted, report = adjust(features, model.statistics, adjustment or Adjustment())
    dynamics = Dynamics.for_model(model.config, scene_gate(scene, gate), level_match,
                                  -report["loudness_shift_db"])
    dry = read_audio(input_path, model.config.sample_rate)
    if not native and isinstance(model, ModelFile):
        model = model.timbre_model()
    report["kernel"] = "native" if native else "tensorflow"
    report["layers"] = "bfloat16" if native and bfloat16 and native_bfloat16() else "float32"
    report["threads"] = None  # the kernel's blocks: how many threads share them
    audio = render_features(model, adjusted, hook, seed, progress=progress, scene=scene,
                            unit_statistics=unit_statistics, dynamics=dynamics, dry=dry,
                            levels_db=features.loudness_db, native=native, bfloat16=bfloat16, threads=threads,
                            report=report)
    if not np.all(np.isfinite(audio)):
        raise RenderError("the model produced NaN or infinite samples; nothing was written")
    audio = limit(audio, model.config.sample_rate)
    peak = float(np.max(np.abs(audio)))
    report["peak"] = peak
    write_audio(output_path, audio, model.config.sample_rate)
    return RenderResult(audio, adjusted, report)


def draw_spectrograms(path: str | Path, input_audio: np.ndarray, output_audio: np.ndarray, sample_rate: int,
                      titles: tuple[str, str] = ("input", "output")) -> Path:
    """Input and output log spectrograms one above the other (as in the network-bending paper), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True, constrained_layout=True)
    for axis, audio, title in zip(axes, (input_audio, output_audio), titles, strict=True):
        floor = np.random.default_rng(0).normal(0.0, 1e-7, len(audio))  # digital silence drawn at -140 dB
        axis.specgram(audio + floor, NFFT=1024, Fs=sample_rate, noverlap=768, cmap="magma", vmin=-140, scale="dB")
        axis.set_title(title)
        axis.set_ylabel("Hz")
    axes[-1].set_xlabel("seconds")
    path = Path(path)
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)
    return path

