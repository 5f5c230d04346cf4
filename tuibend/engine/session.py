"""Setting a performance up from files: the prepared input, the live input, the scene set."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tuibend.adjust import Adjustment, adjust
from tuibend.audiofile import read_audio
from tuibend.bend.scene import Scene, SceneError, load_scene
from tuibend.dsp.flavours import LOUDNESS_FLAVOURS
from tuibend.dsp.plain import midi_to_hz
from tuibend.engine.sources import FilePlayer, LiveAnalysis
from tuibend.keyboard import KeyboardVoice, loudness_range
from tuibend.model.layout import point_widths
from tuibend.native import choose
from tuibend.native.analysis import NativeAnalyzer
from tuibend.native.crepe import NativeCrepe, file_crepe
from tuibend.pitch.analysis import StreamingAnalyzer
from tuibend.pitch.files import analyze
from tuibend.pitch.trackers import make_tracker

if TYPE_CHECKING:
    from tuibend.model.store import ModelFile
    from tuibend.model.timbre import TimbreModel

    Model = TimbreModel | ModelFile


def file_player(model: Model, path: str | Path, tracker: str = "crepe-tiny", loop: bool = True,
                adjustment: Adjustment | None = None, kernel: str = "auto") -> FilePlayer:
    """A prepared file: read, analysed (or its cached analysis), fitted to the model's register. A file not
    analysed before is analysed where the model runs (``kernel`` as the engine's): the kernel's CREPE in
    float32 gives TensorFlow's features within float rounding, several times faster."""
    config = model.config
    audio = read_audio(path, config.sample_rate)
    features = analyze(path, tracker=tracker, loudness=config.loudness, crepe=file_crepe(kernel))
    adjusted, report = adjust(features, model.statistics, adjustment or Adjustment())
    floor = -LOUDNESS_FLAVOURS[config.loudness].range_db
    return FilePlayer(Path(path).name, audio, adjusted, config.hop, floor, loop, -report["loudness_shift_db"],
                      features.loudness_db, features.f0_hz)


def live_input(model: Model, tracker: str = "crepe-tiny", pitch_shift_semitones: float = 0.0,
               keyboard: KeyboardVoice | None = None, kernel: str = "auto", bfloat16: bool = True) -> LiveAnalysis:
    """The live input analysed; with ``keyboard``, its notes give the pitch and the voice the loudness.

    CREPE runs where the model does (``kernel`` as the engine's: the native kernel unless it cannot
    load), in bfloat16 where the CPU has AVX512-BF16 and ``bfloat16`` allows (AMX tiles where it has
    those; elsewhere its first two convolutions in 8 bits where the CPU has AVX512-VNNI); with the kernel's
    CREPE the whole analysis (framing, loudness, interpolation, onset and held pitch) runs in the kernel too."""
    config = model.config
    network = None
    if tracker.startswith("crepe-") and choose(kernel)[0] == "native":
        network = NativeCrepe(tracker.removeprefix("crepe-"), precision="int8" if bfloat16 else "float32")
    pitch = make_tracker(tracker, sample_rate=config.sample_rate, frame_hop=config.hop, network=network)
    analyzer = (StreamingAnalyzer if network is None else NativeAnalyzer)(pitch, config.loudness, config.sample_rate,
                                                                          config.frame_rate)
    return LiveAnalysis(analyzer, pitch_shift_semitones, _resting_f0(model), keyboard=keyboard)


def _resting_f0(model: Model) -> float | None:
    mean_pitch = model.statistics.mean_pitch
    return None if mean_pitch is None else midi_to_hz(float(mean_pitch))


def keyboard_voice(model: Model) -> KeyboardVoice:
    """A keyboard voice whose velocities span the model's trained loudness, resting at its mean pitch."""
    config = model.config
    floor = -LOUDNESS_FLAVOURS[config.loudness].range_db
    soft, full = loudness_range(model.statistics, floor)
    return KeyboardVoice(config.frame_rate, floor, soft, full, resting_f0_hz=_resting_f0(model) or 220.0)


def scene_set(model: Model, paths: list[Path]) -> tuple[list[tuple[Path, Scene]], list[str]]:
    """The scene files that load and fit this model, in order, each with its path; one message per
    file that does not."""
    widths = point_widths(model.config.decoder)
    entries, problems = [], []
    for path in paths:
        try:
            entries.append((path, load_scene(path).check(widths, str(path))))
        except SceneError as error:
            problems.append(str(error))
    return entries, problems

