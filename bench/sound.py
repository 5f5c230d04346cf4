"""How the bundled models sound: silence, level, dynamics, attacks and pitch, measured.

Run: ``python bench/sound.py [--models M ...] [--scenes FOLDER] [--quick]``.

Every input goes the way a prepared file goes in ``tuibend play`` and ``tuibend render``: analysed
(CREPE tiny), fitted to the model (octave rule, loudness placed in the model's range), then played
block by block (4 frames, 256 samples) through the native kernel, the noise gate and the level
match, and the live engine's limiter. Inputs:

- ``held-out``: a melody of the model's own instrument that it never trained on (FluidSynth);
- ``voice``: the bundled demo voice (20 s of singing);
- ``violin``: a violin melody (FluidSynth), another instrument than either model learned;
- ``glide``: a band-limited sawtooth gliding over an octave with 5.5 Hz vibrato;
- ``crescendo``: a held sawtooth note rising 30 dB over 4 s from -45 dBFS, after 2 s of a -70 dBFS floor
  that stays under it;
- ``staccato``: 150 ms notes with 150 ms of silence between them;
- ``notes``: four 1 s notes with 10 ms attacks (for attack overshoot) followed by digital silence;
- ``floor-70`` / ``floor-60`` / ``floor-50``: a 2 s note, then 3 s of the microphone's noise floor
  (white noise at that dBFS), which also lies under the note, as a real microphone's does.

Columns: pitch error of the output (CREPE tiny, cents against the fitted input, voiced frames:
median and 90th percentile); loudness error (dB, median over voiced frames of the output's loudness
against the input's, their median offset removed: the shape of the dynamics); output level against
the input's (median RMS over voiced frames, dB); fall (ms for the output to fall 60 dB below its
playing level after the input stops, ``notes`` and ``floor-*``); floor (the output's level in the
noise floor, dB below its playing level); gap (staccato gaps' depth below the notes, dB); kept (dB of
the crescendo's 30 that the output keeps); overshoot (an attack's peak over its held level, dB);
distance (multi-scale spectral distance to the input, the training loss).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from tuibend.adjust import Adjustment, adjust  # noqa: E402
from tuibend.audiofile import read_audio  # noqa: E402
from tuibend.bend.rig import BendController, BendRig  # noqa: E402
from tuibend.bend.scene import Scene, load_scene, scene_gate  # noqa: E402
from tuibend.bend.units import unit_statistics  # noqa: E402
from tuibend.dsp.spectral import spectral_loss  # noqa: E402
from tuibend.dynamics import Dynamics, GateSettings, parse_gate  # noqa: E402
from tuibend.model.layout import point_widths  # noqa: E402
from tuibend.model.store import load_model  # noqa: E402
from tuibend.native.stream import NativeStream  # noqa: E402
from tuibend.pitch.analysis import analyze_audio  # noqa: E402
from tuibend.pitch.trackers import make_tracker  # noqa: E402
from tuibend.places import bundled  # noqa: E402
from tuibend.render import limit, stream_features  # noqa: E402

RATE = 16000
HOP = 64
LEVEL_FRAME = 160  # 10 ms frames for levels
BLOCK_FRAMES = 4  # 256 samples, the engine's default block


def sawtooth(f0_hz: np.ndarray, harmonics: int = 30) -> np.ndarray:
    """A band-limited sawtooth following a per-sample pitch, RMS 1."""
    phase = 2 * np.pi * np.cumsum(f0_hz) / RATE
    out = np.zeros(len(f0_hz))
    for k in range(1, harmonics + 1):
        out += np.where(k * f0_hz < RATE / 2 - 500, np.sin(k * phase) / k, 0.0)
    return out / np.sqrt(np.mean(out ** 2) + 1e-12)


def envelope(n: int, attack_s: float = 0.01, release_s: float = 0.01) -> np.ndarray:
    ramp_in = np.minimum(1, np.arange(n) / (attack_s * RATE))
    return np.minimum(ramp_in, np.minimum(1, np.arange(n)[::-1] / (release_s * RATE)))


def db_gain(db: float) -> float:
    return 10 ** (db / 20)


def synthetic_suite(pitch_midi: float, rng: np.random.Generator) -> dict[str, dict]:
    """The synthetic inputs with where their notes end (samples), at the model's register."""
    base = 440 * 2 ** ((pitch_midi - 69) / 12)
    suite = {}
    t = np.arange(int(6 * RATE)) / RATE
    glide = base * 2 ** (t / t[-1] - 0.5) * 2 ** (0.3 / 12 * np.sin(2 * np.pi * 5.5 * t))
    suite["glide"] = {"audio": sawtooth(glide) * db_gain(-20) * envelope(len(t), 0.05, 0.05)}
    t = np.arange(int(4 * RATE)) / RATE
    rising = sawtooth(np.full(len(t), base)) * db_gain(-45) * 10 ** (1.5 * t / t[-1]) * envelope(len(t), 0.05, 0.05)
    lead = int(2 * RATE)  # a microphone's floor (-70 dBFS) before and under it, as a performer starts
    audio = np.concatenate([np.zeros(lead), rising])
    suite["crescendo"] = {"audio": audio + rng.standard_normal(len(audio)) * db_gain(-70),
                          "crescendo": (lead, lead + len(t))}
    notes = []
    for index in range(12):
        note = sawtooth(np.full(int(0.15 * RATE), base * 2 ** ((index % 5) / 12))) * db_gain(-20)
        notes += [note * envelope(len(note), 0.005, 0.005), np.zeros(int(0.15 * RATE))]
    suite["staccato"] = {"audio": np.concatenate([np.zeros(int(0.5 * RATE)), *notes]),
                         "staccato": [(int(0.5 * RATE) + i * int(0.3 * RATE), int(0.15 * RATE)) for i in range(12)]}
    pieces, starts, position = [np.zeros(int(0.5 * RATE))], [], int(0.5 * RATE)
    for index in range(4):
        note = sawtooth(np.full(RATE, base * 2 ** ((2 * index) / 12))) * db_gain(-20) * envelope(RATE, 0.01, 0.01)
        starts.append(position)
        pieces += [note, np.zeros(int(0.3 * RATE))]
        position += RATE + int(0.3 * RATE)
    pieces[-1] = np.zeros(int(2 * RATE))
    suite["notes"] = {"audio": np.concatenate(pieces), "attacks": starts, "stop": starts[-1] + RATE}
    for floor in (-70, -60, -50):
        note = sawtooth(np.full(2 * RATE, base)) * db_gain(-20) * envelope(2 * RATE, 0.02, 0.01)
        audio = np.concatenate([np.zeros(int(0.5 * RATE)), note, np.zeros(3 * RATE)])
        audio = audio + rng.standard_normal(len(audio)) * db_gain(floor)
        suite[f"floor{floor}"] = {"audio": audio, "stop": int(2.5 * RATE)}
    return {name: {**entry, "audio": entry["audio"].astype(np.float32)} for name, entry in suite.items()}


def held_out_render(instrument: str, folder: Path) -> np.ndarray | None:
    """A melody of the instrument that no training file holds (another seed), rendered by FluidSynth
    (None without it)."""
    import make_training_audio as training_audio

    if not training_audio.can_render():
        return None
    (wav,) = training_audio.render_unseen(folder, RATE, instrument, 1, 20.0)
    return read_audio(wav, RATE)


class Player:
    """One model, played as a prepared file is (the native kernel, the gate, the level match, the limiter)."""

    def __init__(self, model, model_folder: str, gate=None, level_match: bool = True):
        self.model = model
        self.gate, self.level_match = gate, level_match
        self.folder = model_folder
        self.tracker = make_tracker("crepe-tiny")
        self.widths = point_widths(model.config.decoder)
        self._units = None

    def units(self):
        if self._units is None:
            self._units = unit_statistics(self.model, self.folder)
        return self._units

    def fit(self, audio: np.ndarray):
        features = analyze_audio(audio, self.tracker, self.model.config.loudness)
        return features, *adjust(features, self.model.statistics, Adjustment())

    def play(self, audio: np.ndarray, scene: Scene, fitted) -> np.ndarray:
        features, adjusted, report = fitted
        informed = any(bend.select.method != "random" for bend in scene.bends)
        rig = BendRig(scene.bends, self.widths, BLOCK_FRAMES, self.units() if informed else None, graph=False)
        controller = BendController(rig, self.model.config.frame_rate, scene.automation)
        controller.jump({(i, name): bend.value(name) for i, bend in enumerate(scene.bends)
                         for name in bend.parameter_names()})
        dynamics = Dynamics.for_model(self.model.config, scene_gate(scene, self.gate), self.level_match,
                                      -report["loudness_shift_db"])
        stream = NativeStream(self.model, rig, BLOCK_FRAMES, 0, True)
        out = stream_features(stream, adjusted, controller, dynamics=dynamics, dry=audio,
                              levels_db=features.loudness_db, drone=scene.drone)
        return limit(out, RATE)


def frame_levels(audio: np.ndarray) -> np.ndarray:
    frames = audio[:len(audio) // LEVEL_FRAME * LEVEL_FRAME].reshape(-1, LEVEL_FRAME).astype(np.float64)
    return 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-14)


def measure(player: Player, name: str, entry: dict, out: np.ndarray, fitted) -> dict[str, float]:
    audio = entry["audio"]
    n = min(len(audio), len(out))
    audio, out = audio[:n], out[:n]
    features, adjusted, _ = fitted
    row: dict[str, float] = {}
    in_levels, out_levels = frame_levels(audio), frame_levels(out)
    voiced_frames = np.repeat(features.confidence >= 0.5, HOP)[:n // LEVEL_FRAME * LEVEL_FRAME]
    voiced = voiced_frames.reshape(-1, LEVEL_FRAME).mean(1) > 0.9
    voiced &= in_levels > np.max(in_levels) - 40
    if voiced.sum() > 10:
        row["level"] = float(np.median(out_levels[voiced]) - np.median(in_levels[voiced]))
    rendered = analyze_audio(out, player.tracker, player.model.config.loudness)
    m = min(len(rendered), len(adjusted))
    both = (rendered.confidence[:m] >= 0.5) & (adjusted.confidence[:m] >= 0.5)
    if both.sum() > 10:
        cents = np.abs(1200 * np.log2(rendered.f0_hz[:m][both] / adjusted.f0_hz[:m][both]))
        row["pitch_median"], row["pitch_p90"] = float(np.median(cents)), float(np.percentile(cents, 90))
        difference = rendered.loudness_db[:m][both] - features.loudness_db[:m][both]
        row["loudness"] = float(np.median(np.abs(difference - np.median(difference))))
    row["distance"] = float(spectral_loss(audio[None, :], out[None, :]))
    if "stop" in entry:
        stop = entry["stop"] // LEVEL_FRAME
        playing = float(np.median(out_levels[max(0, stop - 50):stop]))
        after = out_levels[stop:]
        loud = np.nonzero(after > playing - 60)[0]
        row["fall_ms"] = float((loud[-1] + 1) * 10) if len(loud) else 0.0
        if name.startswith("floor"):
            row["floor"] = float(playing - np.median(after[30:]))  # from 300 ms after the stop
            row["fall_ms"] = row["fall_ms"] if row["fall_ms"] < (len(after) - 1) * 10 else float("inf")
    if "staccato" in entry:
        notes, gaps = [], []
        for start, length in entry["staccato"]:
            first, count = start // LEVEL_FRAME, length // LEVEL_FRAME
            notes.append(np.max(out_levels[first:first + count + 3]))
            gaps.append(np.median(out_levels[first + count + 4:first + 2 * count]))
        row["gap"] = float(np.median(notes) - np.median(gaps))
    if "crescendo" in entry:
        start, end = (x // LEVEL_FRAME for x in entry["crescendo"])
        row["kept"] = float(np.median(out_levels[end - 40:end - 10]) - np.median(out_levels[start + 10:start + 40]))
    if "attacks" in entry:
        overshoots = []
        for start in entry["attacks"]:
            first = start // LEVEL_FRAME
            held = np.median(out_levels[first + 30:first + 90])
            overshoots.append(np.max(out_levels[first:first + 15]) - held)
        row["overshoot"] = float(np.median(overshoots))
    return row


COLUMNS = [("pitch_median", "pitch c", "{:.0f}"), ("pitch_p90", "p90 c", "{:.0f}"), ("loudness", "loud dB", "{:.1f}"),
           ("level", "level dB", "{:+.1f}"), ("fall_ms", "fall ms", "{:.0f}"), ("floor", "floor dB", "{:.0f}"),
           ("gap", "gap dB", "{:.0f}"), ("kept", "kept dB", "{:.0f}"), ("overshoot", "overshoot dB", "{:+.1f}"),
           ("distance", "distance", "{:.2f}")]


def cell(row: dict, key: str, form: str) -> str:
    value = row.get(key)
    if value is None:
        return ""
    return "never" if np.isinf(value) else form.format(value)


def table(title: str, rows: list[tuple[str, dict]]) -> str:
    keys = [column for column in COLUMNS if any(column[0] in row for _, row in rows)]
    lines = [f"\n{title}\n", "| input | " + " | ".join(label for _, label, _ in keys) + " |",
             "| --- |" + " ---: |" * len(keys)]
    lines += ["| " + name + " | " + " | ".join(cell(row, key, form) for key, _, form in keys) + " |"
              for name, row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=[str(bundled("models", name)) for name in ("choir", "flute")])
    parser.add_argument("--scenes", default=str(bundled("scenes")), help="the scene folder ('' for none)")
    parser.add_argument("--quick", action="store_true", help="unbent only")
    parser.add_argument("--gate", type=parse_gate, default=GateSettings(), help="auto (default), off or dB")
    parser.add_argument("--no-level-match", dest="level_match", action="store_false")
    args = parser.parse_args()
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    voice = read_audio(bundled("audio", "demo-voice.flac"), RATE)
    scenes = [] if args.quick or not args.scenes else [load_scene(p) for p in sorted(Path(args.scenes).glob("*.toml"))]
    with tempfile.TemporaryDirectory() as scratch:
        for folder in args.models:
            model = load_model(folder)
            player = Player(model, folder, args.gate, args.level_match)
            register = model.statistics.mean_pitch or 60.0
            inputs = {}
            held = held_out_render(Path(folder).name, Path(scratch))
            if held is not None:
                inputs["held-out"] = {"audio": held}
            inputs["voice"] = {"audio": voice}
            violin = held_out_render("violin", Path(scratch))
            if violin is not None:
                inputs["violin"] = {"audio": violin}
            inputs.update(synthetic_suite(register, rng))
            fitted = {name: player.fit(entry["audio"]) for name, entry in inputs.items()}
            rows = [(name, measure(player, name, entry, player.play(entry["audio"], Scene("unbent"), fitted[name]),
                                   fitted[name])) for name, entry in inputs.items()]
            print(table(f"{folder}, unbent", rows))
            scene_rows = []
            for scene in scenes:
                if scene.model is not None and scene.model != Path(folder).name:
                    continue
                summary: dict[str, float] = {}
                for name in ("voice", "staccato", "floor-60"):
                    got = measure(player, name, inputs[name], player.play(inputs[name]["audio"], scene, fitted[name]),
                                  fitted[name])
                    keys = ("level", "pitch_median", "distance") if name == "voice" else ("gap", "floor", "fall_ms")
                    summary.update({key: got[key] for key in keys if key in got})
                scene_rows.append((scene.name + (" (drone)" if scene.drone else ""), summary))
            if scene_rows:
                print(table(f"{folder}, scenes (voice: level, pitch, distance; staccato: gap; floor-60: fall, floor)",
                            scene_rows))
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
