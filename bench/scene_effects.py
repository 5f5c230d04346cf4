"""What each bundled scene does to the bundled models, measured on the bundled demo voice.

Run: ``python bench/scene_effects.py [--models models/choir models/flute] [--scenes scenes]``.
The demo voice (``audio/demo-voice.flac``, 20 s of singing) is analysed and adjusted to each model
as ``tuibend render`` does, rendered unbent and through every scene (with its automation, from the
start), and each render is measured against the unbent one: level (RMS, dB), spectral centroid
and flatness, the modulation of the level and of the centroid (their 1-9 Hz band, the rates of
LFOs, tremolo and a singer's vibrato: how much the sound wobbles), and YIN's pitch error against the
input contour (median cents on voiced frames: is the melody still there). This is the listening
proxy the scenes were tuned with; the README carries the table.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tuibend  # noqa: E402
from tuibend.adjust import Adjustment, adjust  # noqa: E402
from tuibend.bend.scene import load_scene  # noqa: E402
from tuibend.bend.units import unit_statistics  # noqa: E402
from tuibend.model.decoder import point_widths  # noqa: E402
from tuibend.pitch.analysis import analyze_audio  # noqa: E402
from tuibend.pitch.files import analyze  # noqa: E402
from tuibend.pitch.trackers import make_tracker  # noqa: E402
from tuibend.render import render_features  # noqa: E402

FRAME = 1024
HOP = 256
MODULATION_BAND_HZ = (1.0, 9.0)


def band_wobble(contour: np.ndarray, frame_rate: float) -> float:
    """Standard deviation of a contour's 1-9 Hz band: its movement at the rates of LFOs, tremolo and
    a singer's vibrato, without the phrase-long swells."""
    spectrum = np.fft.rfft(contour - contour.mean())
    frequencies = np.fft.rfftfreq(len(contour), 1.0 / frame_rate)
    spectrum[(frequencies < MODULATION_BAND_HZ[0]) | (frequencies > MODULATION_BAND_HZ[1])] = 0.0
    return float(np.std(np.fft.irfft(spectrum, len(contour))))


def measures(audio: np.ndarray, f0_in: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Level, colour, wobble and pitch of a render, over the frames where it sounds."""
    frames = np.lib.stride_tricks.sliding_window_view(audio, FRAME)[::HOP] * np.hanning(FRAME)
    power = np.abs(np.fft.rfft(frames)) ** 2 + 1e-12
    frequencies = np.fft.rfftfreq(FRAME, 1.0 / sample_rate)
    level_db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
    sounding = level_db > level_db.max() - 40.0
    centroid = (power * frequencies).sum(1) / power.sum(1)
    flatness = np.exp(np.log(power).mean(1)) / power.mean(1)
    frame_rate = sample_rate / HOP
    centroid_cents = 1200 * np.log2(np.maximum(centroid, 20.0))
    tracked = analyze_audio(audio, make_tracker("yin"))
    n = min(len(tracked), len(f0_in))
    voiced = (tracked.confidence[:n] > 0.8) & (f0_in[:n] > 0)
    cents = np.abs(1200 * np.log2(np.maximum(tracked.f0_hz[:n][voiced], 1.0) / f0_in[:n][voiced]))
    return {
        "level": float(10 * np.log10(np.mean(audio ** 2) + 1e-12)),
        "centroid": float(np.median(centroid[sounding])),
        "flatness": float(np.median(flatness[sounding])),
        "level_wobble": band_wobble(np.where(sounding, level_db, level_db.max() - 40.0), frame_rate),
        "centroid_wobble": band_wobble(np.where(sounding, centroid_cents, np.median(centroid_cents)), frame_rate),
        "pitch_error": float(np.median(cents)) if voiced.sum() > 10 else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", type=Path,
                        default=[REPO / "models" / "choir", REPO / "models" / "flute"])
    parser.add_argument("--scenes", type=Path, default=REPO / "scenes")
    parser.add_argument("--input", type=Path, default=REPO / "audio" / "demo-voice.flac")
    args = parser.parse_args()
    scene_files = sorted(args.scenes.glob("*.toml"))
    print("| model | scene | level dB | centroid ratio | flatness ratio | level wobble dB | centroid wobble "
          "cents | pitch error cents |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for folder in args.models:
        model = tuibend.load_model(folder)
        rate = model.config.sample_rate
        features, _ = adjust(analyze(args.input, loudness=model.config.loudness), model.statistics, Adjustment())
        statistics = unit_statistics(model, folder)
        base = measures(render_features(model, features), features.f0_hz, rate)
        print(f"| {folder.name} | (unbent) | {base['level']:.1f} | 1 | 1 | {base['level_wobble']:.2f} | "
              f"{base['centroid_wobble']:.0f} | {base['pitch_error']:.0f} |", flush=True)
        for path in scene_files:
            scene = load_scene(path).check(point_widths(model.config.decoder), str(path))
            audio = render_features(model, features, scene=scene, unit_statistics=statistics)
            if not np.all(np.isfinite(audio)):
                print(f"| {folder.name} | {path.stem} | non-finite | | | | | |")
                continue
            m = measures(audio, features.f0_hz, rate)
            print(f"| {folder.name} | {path.stem} | {m['level'] - base['level']:+.1f} | "
                  f"{m['centroid'] / base['centroid']:.2f} | {m['flatness'] / base['flatness']:.2f} | "
                  f"{m['level_wobble']:.2f} | {m['centroid_wobble']:.0f} | {m['pitch_error']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
