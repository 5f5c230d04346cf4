"""What each bend does, measured: every transform x point x proportion against the unbent render.

Run: ``python bench/bend_effects.py [--model FOLDER] [--out bench/out]``. The input is a fixed
sung-like contour (gliding pitch with vibrato, swelling loudness) in the model's register. For each
render the table gives, relative to the unbent render: spectral centroid and flatness, the pitch
error of YIN on the output against the input contour (median cents, voiced frames) and the amplitude
modulation depth (std / mean of the frame RMS). Spectrograms at proportion 0.5 are saved per transform.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tuibend  # noqa: E402
from tuibend.bend.registry import Bend  # noqa: E402
from tuibend.bend.rig import control_scene  # noqa: E402
from tuibend.bend.transforms import TRANSFORMS  # noqa: E402
from tuibend.bend.units import probe_features  # noqa: E402
from tuibend.model.layout import point_widths  # noqa: E402
from tuibend.pitch.analysis import Features, analyze_audio  # noqa: E402
from tuibend.pitch.trackers import make_tracker  # noqa: E402
from tuibend.places import bundled  # noqa: E402
from tuibend.render import render_features, stream_features  # noqa: E402

PROPORTIONS = (0.1, 0.5, 0.9)


def measures(audio: np.ndarray, f0_in: np.ndarray, sample_rate: int) -> dict[str, float]:
    frames = np.lib.stride_tricks.sliding_window_view(audio, 1024)[::256] * np.hanning(1024)
    power = np.abs(np.fft.rfft(frames)) ** 2 + 1e-12
    frequencies = np.fft.rfftfreq(1024, 1 / sample_rate)
    centroid = float(np.median((power * frequencies).sum(1) / power.sum(1)))
    flatness = float(np.median(np.exp(np.log(power).mean(1)) / power.mean(1)))
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    modulation = float(np.std(rms) / (np.mean(rms) + 1e-12))
    tracked = analyze_audio(audio, make_tracker("yin"))
    n = min(len(tracked), len(f0_in))
    voiced = tracked.confidence[:n] > 0.8
    cents = np.abs(1200 * np.log2(np.maximum(tracked.f0_hz[:n][voiced], 1) / f0_in[:n][voiced]))
    return {"centroid": centroid, "flatness": flatness, "modulation": modulation,
            "pitch_error": float(np.median(cents)) if voiced.sum() > 10 else float("nan"),
            "voiced": float(voiced.mean())}


def default_model() -> Path:
    for candidate in (bundled("models", "choir"), REPO / "models" / "voice"):
        if (candidate / "config.json").exists():
            return candidate
    fixtures = Path(os.environ.get("TUIBEND_FIXTURES", REPO.parent / "shared" / "fixtures"))
    return tuibend.import_ddsp(fixtures / "ddsp" / "solo_instrument_ckpt", Path(tempfile.mkdtemp()) / "solo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a model folder (default: the bundled choir, else the fixture)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out", help="where spectrograms go")
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    folder = args.model or default_model()
    model = tuibend.load_model(folder)
    f0, loudness = probe_features(model, args.seconds)
    features = Features(f0, np.ones_like(f0), loudness)
    rate = model.config.sample_rate
    plain = render_features(model, features)
    base = measures(plain, f0, rate)
    print(f"Bend effects on {model.config.name} ({folder}), {args.seconds:.0f} s probe; unbent: centroid "
          f"{base['centroid']:.0f} Hz, flatness {base['flatness']:.3f}, AM depth {base['modulation']:.2f}, "
          f"pitch error {base['pitch_error']:.0f} cents\n")
    print("| transform | point | proportion | centroid ratio | flatness ratio | AM depth ratio | pitch error (cents) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    args.out.mkdir(parents=True, exist_ok=True)
    from tuibend.render import draw_spectrograms

    block = model.config.frame_rate  # one-second blocks, as render_features
    for transform in TRANSFORMS:
        for point in model.bend_points:
            # One compiled stream per transform and point, its proportion set for each render:
            # TensorFlow keeps every compiled executable, and 288 of them exhaust the process's maps.
            controller = control_scene([Bend(point, transform, PROPORTIONS[0], seed=1)], {},
                                       point_widths(model.config.decoder), block, model.config.frame_rate)
            stream = model.stream(block, hook=controller.rig.hook)
            for proportion in PROPORTIONS:
                controller.jump({(0, "proportion"): proportion})
                audio = stream_features(stream, features, controller)
                if not np.all(np.isfinite(audio)):
                    print(f"| {transform} | {point} | {proportion} | non-finite output | | | |")
                    continue
                m = measures(audio, f0, rate)
                print(f"| {transform} | {point} | {proportion} | {m['centroid'] / base['centroid']:.2f} | "
                      f"{m['flatness'] / base['flatness']:.2f} | {m['modulation'] / base['modulation']:.2f} | "
                      f"{m['pitch_error']:.0f} |", flush=True)
                if proportion == 0.5 and point in ("fc1", "gru", "fc2"):
                    draw_spectrograms(args.out / f"{transform}-{point}.png", plain, audio, rate,
                                      ("unbent", f"{transform} at {point}, proportion 0.5"))


if __name__ == "__main__":
    main()
