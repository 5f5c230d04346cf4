"""What each bundled scene does to the bundled models, measured on the bundled demo voice.

Run: ``python bench/scene_effects.py [--models M ...] [--scenes FOLDER]``.
The demo voice (``audio/demo-voice.flac``, 20 s of singing) is played to each model as a prepared
file is (``bench/sound.py``'s player: the fitted analysis, the native kernel, the gate and the level
match), unbent and through every scene (with its automation, from the start), and each render is
measured against the unbent one: level (RMS, dB), spectral distance (mean absolute difference of
the log spectra, dB, over frames where either sounds), spectral centroid and flatness, the 4-7 Hz
modulation of the level and the centroid (a vibrato's or an LFO's rate: how much the sound wobbles)
over the first and the last 6 s (a scene whose lane opens a wobble shows it growing), and YIN's
pitch error against the input contour (median cents on voiced frames: is the melody still there).
A second table holds each scene's breakpoint lanes at their first and at their last value (the fader
where the lane starts, and where it ends) over the whole voice: the same input both times, so what
changes is the fader alone.
This is the listening proxy the scenes were tuned with; the README carries the table.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sound import Player  # noqa: E402

import tuibend  # noqa: E402
from tuibend.audiofile import read_audio  # noqa: E402
from tuibend.bend.automation import Breakpoints  # noqa: E402
from tuibend.bend.scene import Scene, load_scene  # noqa: E402
from tuibend.model.layout import point_widths  # noqa: E402
from tuibend.pitch.analysis import analyze_audio  # noqa: E402
from tuibend.pitch.trackers import make_tracker  # noqa: E402
from tuibend.places import bundled  # noqa: E402

FRAME = 1024
HOP = 256
MODULATION_BAND_HZ = (4.0, 7.0)
THIRD_S = 6.0


def band_wobble(contour: np.ndarray, frame_rate: float) -> float:
    """Standard deviation of a contour's 4-7 Hz band: its movement at a vibrato's rate, without the
    phrase-long swells."""
    spectrum = np.fft.rfft(contour - contour.mean())
    frequencies = np.fft.rfftfreq(len(contour), 1.0 / frame_rate)
    spectrum[(frequencies < MODULATION_BAND_HZ[0]) | (frequencies > MODULATION_BAND_HZ[1])] = 0.0
    return float(np.std(np.fft.irfft(spectrum, len(contour))))


def spectra(audio: np.ndarray) -> np.ndarray:
    """Power spectra of Hann-windowed frames."""
    frames = np.lib.stride_tricks.sliding_window_view(audio, FRAME)[::HOP] * np.hanning(FRAME)
    return np.abs(np.fft.rfft(frames)) ** 2 + 1e-12


def distance_db(audio: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute difference of the log spectra (dB, floored 80 dB under the loudest bin), over
    the frames where either render sounds."""
    a, b = spectra(audio), spectra(reference)
    n = min(len(a), len(b))
    a_db, b_db = 10 * np.log10(a[:n]), 10 * np.log10(b[:n])
    top = max(a_db.max(), b_db.max())
    a_db, b_db = np.maximum(a_db, top - 80), np.maximum(b_db, top - 80)
    level = lambda x: 10 * np.log10(np.mean(10 ** (x / 10), axis=1))  # noqa: E731
    sounding = (level(a_db) > top - 50) | (level(b_db) > top - 50)
    return float(np.mean(np.abs(a_db - b_db)[sounding]))


def measures(audio: np.ndarray, f0_in: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Level, colour, wobble and pitch of a render, over the frames where it sounds."""
    frames = np.lib.stride_tricks.sliding_window_view(audio, FRAME)[::HOP] * np.hanning(FRAME)
    power = spectra(audio)
    frequencies = np.fft.rfftfreq(FRAME, 1.0 / sample_rate)
    level_db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    sounding = level_db > level_db.max() - 40.0
    centroid = (power * frequencies).sum(1) / power.sum(1)
    flatness = np.exp(np.log(power).mean(1)) / power.mean(1)
    frame_rate = sample_rate / HOP
    third = int(THIRD_S * frame_rate)
    centroid_cents = 1200 * np.log2(np.maximum(centroid, 20.0))
    tracked = analyze_audio(audio, make_tracker("yin"))
    n = min(len(tracked), len(f0_in))
    voiced = (tracked.confidence[:n] > 0.8) & (f0_in[:n] > 0)
    cents = np.abs(1200 * np.log2(np.maximum(tracked.f0_hz[:n][voiced], 1.0) / f0_in[:n][voiced]))
    return {
        "level": float(10 * np.log10(np.mean(audio ** 2) + 1e-12)),
        "centroid": float(np.median(centroid[sounding])),
        "flatness": float(np.median(flatness[sounding])),
        **{f"{name}_wobble_{part}": band_wobble(contour[span], frame_rate)
           for name, contour in (("level", np.where(sounding, level_db, level_db.max() - 40.0)),
                                 ("centroid", np.where(sounding, centroid_cents, np.median(centroid_cents))))
           for part, span in (("first", slice(0, third)), ("last", slice(-third, None)))},
        "pitch_error": float(np.median(cents)) if voiced.sum() > 10 else float("nan"),
    }


def held(scene: Scene, last: bool) -> Scene | None:
    """``scene`` with its breakpoint lanes held at their first (or last) value; None if it has none."""
    lanes = {key: lane for key, lane in scene.automation.items() if isinstance(lane, Breakpoints)}
    if not lanes:
        return None
    fixed = copy.deepcopy(scene)
    for (index, name), lane in lanes.items():
        value = float(lane.values[-1 if last else 0])
        bend = fixed.bends[index]
        fixed.bends[index] = (dataclasses.replace(bend, proportion=value) if name == "proportion"
                              else dataclasses.replace(bend, params={**bend.params, name: value}))
        del fixed.automation[(index, name)]
    return fixed


def whole_wobble(audio: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """The 4-7 Hz wobble of level (dB) and centroid (cents) over a whole render."""
    frames = np.lib.stride_tricks.sliding_window_view(audio, FRAME)[::HOP] * np.hanning(FRAME)
    power = spectra(audio)
    level_db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    sounding = level_db > level_db.max() - 40.0
    centroid = 1200 * np.log2(np.maximum((power * np.fft.rfftfreq(FRAME, 1.0 / sample_rate)).sum(1)
                                         / power.sum(1), 20.0))
    frame_rate = sample_rate / HOP
    return (band_wobble(np.where(sounding, level_db, level_db.max() - 40.0), frame_rate),
            band_wobble(np.where(sounding, centroid, np.median(centroid)), frame_rate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", type=Path,
                        default=[bundled("models", "choir"), bundled("models", "flute")])
    parser.add_argument("--scenes", type=Path, default=bundled("scenes"))
    parser.add_argument("--input", type=Path, default=bundled("audio", "demo-voice.flac"))
    args = parser.parse_args()
    scene_files = sorted(args.scenes.glob("*.toml"))
    print("| model | scene | level dB | distance dB | centroid ratio | flatness ratio | level wobble 4-7 Hz dB "
          "(first 6 s / last 6 s) | centroid wobble cents (first / last) | pitch error cents |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    lanes_held: list[str] = []
    for folder in args.models:
        model = tuibend.load_model(folder)
        rate = model.config.sample_rate
        player = Player(model, str(folder))
        audio_in = read_audio(args.input, rate)
        fitted = player.fit(audio_in)
        f0_in = fitted[1].f0_hz
        plain = player.play(audio_in, Scene("unbent"), fitted)
        base = measures(plain, f0_in, rate)

        def row(name: str, m: dict, level: float, distance: float, centroid: float, flatness: float,
                model_name: str = folder.name) -> str:
            return (f"| {model_name} | {name} | {level:+.1f} | {distance:.1f} | {centroid:.2f} | {flatness:.2f} | "
                    f"{m['level_wobble_first']:.2f} / {m['level_wobble_last']:.2f} | "
                    f"{m['centroid_wobble_first']:.0f} / {m['centroid_wobble_last']:.0f} | {m['pitch_error']:.0f} |")

        print(row("(unbent)", base, 0.0, 0.0, 1.0, 1.0), flush=True)
        for path in scene_files:
            scene = load_scene(path).check(point_widths(model.config.decoder), str(path))
            if scene.model is not None and scene.model != folder.name:
                continue
            audio = player.play(audio_in, scene, fitted)
            if not np.all(np.isfinite(audio)):
                print(f"| {folder.name} | {path.stem} | non-finite | | | | | | |")
                continue
            m = measures(audio, f0_in, rate)
            print(row(path.stem, m, m["level"] - base["level"], distance_db(audio, plain),
                      m["centroid"] / base["centroid"], m["flatness"] / base["flatness"]), flush=True)
            ends = [held(scene, last) for last in (False, True)]
            if ends[0] is not None:
                wobbles = [whole_wobble(player.play(audio_in, end, fitted), rate) for end in ends]
                lanes_held.append(f"| {folder.name} | {path.stem} | {wobbles[0][0]:.2f} / {wobbles[1][0]:.2f} | "
                                  f"{wobbles[0][1]:.0f} / {wobbles[1][1]:.0f} |")
    print("\nLanes held at their first / last value, the whole voice:\n")
    print("| model | scene | level wobble 4-7 Hz dB | centroid wobble cents |")
    print("| --- | --- | ---: | ---: |")
    print("\n".join(lanes_held))


if __name__ == "__main__":
    main()
