"""Network bending: transform arithmetic, unit selection, control, automation, scenes, render."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import relative_error

from tuibend.bend.automation import Breakpoints, Lfo, Recorder
from tuibend.bend.registry import Bend, BendError
from tuibend.bend.rig import BendController, BendRig, control_scene, numpy_fill
from tuibend.bend.scene import Scene, SceneError, load_scene, save_scene, scene_to_toml
from tuibend.bend.selection import Selection, SelectionError, unit_order
from tuibend.bend.transforms import TRANSFORMS
from tuibend.bend.units import compute_unit_statistics
from tuibend.model.layout import point_widths
from tuibend.native.control import KernelFill

WIDTHS = {"fc1": 8, "gru": 6}
FRAMES = 5


def _apply(transform: str, activations: np.ndarray, proportion: float = 1.0, **params) -> np.ndarray:
    rig = BendRig([Bend("fc1", transform, proportion, params=params)], WIDTHS, FRAMES)
    controller = BendController(rig, 250.0, smoothing_seconds=0.0)
    controller.advance()
    return rig.hook("fc1", tf.constant(activations[None], tf.float32)).numpy()[0], rig, controller


@pytest.fixture
def activations():
    return np.random.default_rng(0).normal(size=(FRAMES, 8)).astype(np.float32)


def test_seed_transforms_do_exactly_what_the_table_says(activations):
    a = activations
    np.testing.assert_allclose(_apply("invert", a)[0], 1.0 - a, atol=1e-6)
    np.testing.assert_allclose(_apply("ablate", a)[0], 0.0)
    out = _apply("threshold", a, thresh=0.2)[0]
    expected = np.where(a < 0.2, a.min(axis=1, keepdims=True), a.max(axis=1, keepdims=True))
    np.testing.assert_allclose(out, expected, atol=1e-6)
    out, *_ = _apply("oscillate", a, freq=5.0, depth=0.5)
    phases = 2 * np.pi * 5.0 / 250.0 * np.arange(1, FRAMES + 1)
    np.testing.assert_allclose(out, a + 0.5 * np.sin(phases)[:, None], atol=1e-5)


def test_further_transforms(activations):
    a = activations
    np.testing.assert_allclose(_apply("scale", a, gain=-2.0)[0], -2.0 * a, atol=1e-6)
    np.testing.assert_allclose(_apply("offset", a, amount=0.7)[0], a + 0.7, atol=1e-6)
    np.testing.assert_allclose(_apply("clamp", a, low=-0.5, high=0.25)[0], np.clip(a, -0.5, 0.25), atol=1e-6)
    np.testing.assert_allclose(_apply("quantise", a, step=0.5)[0], np.round(a / 0.5) * 0.5, atol=1e-6)
    big = np.zeros((FRAMES, 8), np.float32)
    noisy = _apply("noise", np.tile(big, (1, 1)), amount=2.0)[0]
    assert 1.0 < noisy.std() < 3.0
    assert set(TRANSFORMS) >= {"oscillate", "threshold", "invert", "ablate"}


def test_fractional_proportion_fades_units_in(activations):
    out = _apply("ablate", activations, proportion=0.5625)[0]  # 4.5 of 8 units
    untouched = np.isclose(out, activations).all(axis=0)
    zeroed = np.isclose(out, 0.0).all(axis=0)
    halfway = np.isclose(out, 0.5 * activations).all(axis=0)
    assert zeroed.sum() == 4 and halfway.sum() == 1 and untouched.sum() == 3


def test_selection_is_nested_and_seeded():
    order = unit_order(Selection(), 512, 7, None, "fc1")
    assert sorted(order) == list(range(512))
    np.testing.assert_array_equal(order, unit_order(Selection(), 512, 7, None, "fc1"))
    assert not np.array_equal(order, unit_order(Selection(), 512, 8, None, "fc1"))
    rig = BendRig([Bend("fc1", "ablate", 0.3, seed=7)], {"fc1": 512}, 1)
    controller = BendController(rig, 250.0, smoothing_seconds=0.0)
    ones = tf.ones([1, 1, 512])
    selected = []
    for proportion in (0.1, 0.3, 0.6):
        controller.set(0, "proportion", proportion)
        controller.advance()
        selected.append(set(np.flatnonzero(rig.hook("fc1", ones).numpy()[0, 0] == 0.0)))
    assert selected[0] < selected[1] < selected[2]  # raising p only adds units
    assert len(selected[1]) == int(0.3 * 512)  # 153 whole units (the 154th is 60% in)


@pytest.mark.slow
def test_informed_selections_follow_the_statistics(solo_model):
    statistics = compute_unit_statistics(solo_model)
    variance = statistics["gru/variance"]
    order = unit_order(Selection("variance"), 512, 0, statistics, "gru")
    assert variance[order[0]] == variance.max() and np.all(np.diff(variance[order]) <= 0)
    correlation = np.abs(statistics["fc2/correlation/pitch"])
    order = unit_order(Selection("correlation", feature="pitch"), 512, 0, statistics, "fc2")
    assert correlation[order[0]] == correlation.max()
    labels = statistics["fc1/clusters/8"]
    members = unit_order(Selection("cluster", cluster=3, clusters=8), 1024, 0, statistics, "fc1")
    assert set(members) == set(np.flatnonzero(labels == 3)) and len(members) > 0
    with pytest.raises(SelectionError, match="needs the model's unit statistics"):
        unit_order(Selection("variance"), 512, 0, None, "gru")


def test_fader_moves_glide_and_are_heard_in_the_next_block():
    rig = BendRig([Bend("gru", "scale", 1.0, params={"gain": 1.0})], WIDTHS, 4)
    controller = BendController(rig, 250.0)
    controller.advance()
    controller.set(0, "gain", 3.0)
    values = np.concatenate([controller.block_values()[rig.rows[(0, "gain")]] for _ in range(10)])
    assert values[0] > 1.0 + 0.1  # moving in the first frame of the next block
    assert np.all(np.diff(values) > 0) and np.max(np.diff(values)) < 0.4  # a glide, not a jump
    assert abs(values[-1] - 3.0) < 0.01  # there within 160 ms


@pytest.mark.quick
def test_faders_at_rest_keep_their_values_and_each_block_its_own():
    """A fader at rest holds its value in every frame, a block's values never change once given (the next block
    is a new array: the kernel and the interface read it while the controller goes on), and a row that ends a
    glide, a morph or a lane rests on where it ended."""
    bends = [Bend("gru", "scale", 0.5, params={"gain": 1.0}), Bend("fc1", "offset", 0.25, params={"amount": 0.3})]
    rig = BendRig(bends, WIDTHS, 4)
    lane = Breakpoints([0.0, 0.05], [0.0, 0.7])  # ends after 13 frames, then holds its last value
    controller = BendController(rig, 250.0, {(1, "amount"): lane})
    first = controller.block_values()
    given = first.copy()
    controller.set(0, "gain", 2.0)
    blocks = [controller.block_values() for _ in range(60)]
    np.testing.assert_array_equal(first, given)  # untouched by the blocks after it
    gain, proportion = rig.rows[(0, "gain")], rig.rows[(1, "proportion")]
    assert np.all(first[proportion] == np.float32(0.25)) and all(np.all(b[proportion] == np.float32(0.25))
                                                                 for b in blocks)
    assert np.all(blocks[-1][gain] == np.float32(2.0)) and controller.value(0, "gain") == 2.0  # arrived, resting
    assert np.all(blocks[-1][rig.rows[(1, "amount")]] == np.float32(0.7))
    controller.morph({(0, "gain"): 0.5}, seconds=0.04)  # ten frames
    after = [controller.block_values()[gain] for _ in range(5)]
    assert after[0][0] < 2.0 and np.all(after[-1] == np.float32(0.5))  # glided there, resting on its end
    controller.set(0, "gain", 0.5)  # the same value again: nothing moves
    assert np.all(controller.block_values()[gain] == np.float32(0.5))


def test_oscillator_phase_is_continuous_across_blocks_and_rate_changes():
    rig = BendRig([Bend("gru", "oscillate", 1.0, params={"freq": 3.0, "depth": 1.0})], WIDTHS, 4)
    controller = BendController(rig, 250.0, smoothing_seconds=0.0)
    phases, freqs = [], []
    for block in range(30):
        if block == 10:
            controller.set(0, "freq", 11.0)
        values = controller.block_values()
        phases.append(values[rig.rows[(0, "phase")]])
        freqs.append(values[rig.rows[(0, "freq")]])
    phase, freq = np.unwrap(np.concatenate(phases)), np.concatenate(freqs)
    np.testing.assert_allclose(np.diff(phase), 2 * np.pi * freq[1:] / 250.0, atol=1e-4)


def test_automation_is_exact_to_the_frame():
    lane = Breakpoints([0.0, 1.0, 2.0], [0.0, 1.0, 0.0])
    rig = BendRig([Bend("fc1", "offset", 1.0)], WIDTHS, 5)
    controller = BendController(rig, 250.0, {(0, "amount"): lane})
    values = np.concatenate([controller.block_values()[rig.rows[(0, "amount")]] for _ in range(100)])
    assert values[125] == pytest.approx(0.5) and values[250] == pytest.approx(1.0) and values[375] == 0.5
    square = Lfo("square", rate_hz=2.0, minimum=-1.0, maximum=3.0).at(np.arange(250) / 250.0)
    assert set(np.round(square, 6)) == {-1.0, 3.0} and square[62] == 3.0 and square[63] == -1.0
    sine = Lfo("sine", rate_hz=1.0, minimum=-2.0, maximum=-1.0).at(np.arange(1000) / 1000.0)
    assert sine.min() == pytest.approx(-2.0) and sine.max() == pytest.approx(-1.0, abs=1e-5)
    synced = Lfo("triangle", beats=1.0, bpm=150.0)
    assert synced.frequency == 2.5
    held = Lfo("random", rate_hz=4.0, seed=3).at(np.arange(100) / 100)
    np.testing.assert_array_equal(held, Lfo("random", rate_hz=4.0, seed=3).at(np.arange(100) / 100))
    assert not np.array_equal(held, Lfo("random", rate_hz=4.0, seed=4).at(np.arange(100) / 100))
    assert len(set(held)) == 4 and np.all(held[:25] == held[0])  # one value per cycle, held
    looped = Breakpoints([0.0, 1.0], [0.0, 1.0], loop=True)
    assert looped.at(np.array([1.25]))[0] == pytest.approx(0.25)
    assert Breakpoints([0.0, 1.0], [0.0, 1.0]).at(np.array([5.0]))[0] == 1.0  # once: holds at the end


def test_recorded_moves_play_back():
    recorder = Recorder()
    for seconds, value in ((0.0, 0.2), (0.5, 0.2), (1.0, 0.8), (2.0, 0.4)):
        recorder.record(seconds, value)
    lane = recorder.lane(curve="step")
    np.testing.assert_allclose(lane.at(np.array([0.25, 1.5, 3.0])), [0.2, 0.8, 0.4])


def test_morph_reaches_the_new_values_linearly():
    rig = BendRig([Bend("fc1", "scale", 0.2, params={"gain": 1.0})], WIDTHS, 5)
    controller = BendController(rig, 250.0)
    controller.morph({(0, "proportion"): 0.8, (0, "gain"): 5.0}, seconds=0.2)
    values = np.concatenate([controller.block_values()[rig.rows[(0, "proportion")]] for _ in range(12)])
    np.testing.assert_allclose(values[:50], 0.2 + 0.6 * np.arange(1, 51) / 50, atol=1e-6)
    assert np.all(values[49:] == pytest.approx(0.8))


def test_parameters_change_without_retracing(solo_model, golden):
    controller = control_scene([Bend("fc1", "oscillate", 0.4), Bend("gru", "threshold", 0.1),
                                Bend("fc2", "scale", 0.5)], {}, point_widths(solo_model.config.decoder), 4, 250.0)
    traces = []

    def counted(point, activations):
        traces.append(point)
        return controller.rig.hook(point, activations)

    stream = solo_model.stream(4, hook=counted)
    f0, loudness = golden["f0_hz"], golden["loudness_db"]
    for block in range(20):
        controller.set(block % 3, "proportion", (block % 7) / 7)
        controller.advance()
        stream.step(f0[4 * block:4 * block + 4], loudness[4 * block:4 * block + 4])
    assert len(traces) == len(solo_model.bend_points)  # one trace: each point visited once


def _scene() -> Scene:
    return Scene("test scene", [Bend("fc1", "ablate", 0.65, Selection("random"), 7),
                                Bend("gru", "oscillate", 0.3, Selection("cluster", cluster=2, clusters=8), 1,
                                     {"freq": 2.5, "depth": 0.8}),
                                Bend("fc2", "threshold", 0.05, Selection("correlation", feature="centroid"), 0,
                                     {"thresh": 0.5})],
                 {(0, "proportion"): Breakpoints([0.0, 8.0], [0.65, 0.95], "smooth"),
                  (1, "freq"): Lfo("triangle", beats=2.0, bpm=96.0, minimum=0.5, maximum=4.0)},
                 morph_seconds=1.5, model="choir")


def test_scene_round_trips_exactly(tmp_path):
    scene = _scene()
    path = save_scene(tmp_path / "scene.toml", scene)
    loaded = load_scene(path)
    assert loaded == scene
    assert scene_to_toml(loaded) == path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.toml"]


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace('transform = "ablate"', 'transform = "explode"'),
     r"bend\[1\]\.transform: 'explode' is unknown \(allowed: oscillate, threshold"),
    (lambda t: t.replace("proportion = 0.65", "proportion = 1.5"), r"bend\[1\]\.proportion: 1.5 is outside \[0, 1\]"),
    (lambda t: t.replace("proportion = 0.65", 'proportion = "most"'), r"bend\[1\]\.proportion: expected a number"),
    (lambda t: t.replace("seed = 7", "seed = 7.5"), r"bend\[1\]\.seed: expected an integer"),
    (lambda t: t.replace("depth = 0.8", "width = 0.8"), r"bend\[2\]\.params\.width: oscillate takes freq, depth"),
    (lambda t: t.replace('name = "test scene"', 'name = "test scene'), "unreadable TOML"),
    (lambda t: t.replace('[automation."2.freq"]', '[automation."9.freq"]'), r"automation\.9\.freq: address lanes"),
    (lambda t: t.replace('shape = "triangle"', 'shape = "saw"'), r"automation\.2\.freq: lfo shape 'saw'"),
    (lambda t: t + "\ncolour = 3\n", r"colour: unknown field"),
])
def test_scene_faults_name_file_field_and_what_is_allowed(tmp_path, edit, message):
    path = save_scene(tmp_path / "broken.toml", _scene())
    path.write_text(edit(path.read_text()))
    with pytest.raises(SceneError, match=message) as caught:
        load_scene(path)
    assert str(caught.value).startswith(str(path))


def test_scene_point_must_exist_in_the_model(tmp_path):
    scene = Scene("x", [Bend("fc9", "ablate", 0.5)])
    with pytest.raises(SceneError, match=r"bend\[1\]\.point: 'fc9' is not a bend point of this model"):
        scene.check({"fc1": 4, "gru": 4}, "x.toml")
    with pytest.raises(BendError, match="not a bend point"):
        BendRig(scene.bends, {"fc1": 4}, 4)


@pytest.mark.slow
def test_render_with_a_scene_differs_from_the_unbent_render(solo_model_dir, crepe_reference, tmp_path):
    import soundfile

    soundfile.write(tmp_path / "in.wav", crepe_reference["choir_audio"][:32000], 16000)
    scene = Scene("loud fc2", [Bend("fc2", "threshold", 0.1, params={"thresh": 0.0}),
                               Bend("gru", "oscillate", 0.5, params={"freq": 4.0, "depth": 2.0})],
                  {(1, "proportion"): Breakpoints([0.0, 2.0], [0.0, 1.0])})
    save_scene(tmp_path / "scene.toml", scene)
    outputs = {}
    for label, extra in (("plain", []), ("bent", ["--scene", str(tmp_path / "scene.toml")])):
        result = subprocess.run([sys.executable, "-m", "tuibend.cli", "render", str(tmp_path / "in.wav"), "-o",
                                 str(tmp_path / f"{label}.wav"), "--model", str(solo_model_dir), "--tracker", "yin",
                                 *extra], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        outputs[label] = soundfile.read(tmp_path / f"{label}.wav")[0]
    assert relative_error(outputs["bent"], outputs["plain"]) > 0.1
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "x"\n[[bend]]\npoint = "fc7"\ntransform = "ablate"\n')
    result = subprocess.run([sys.executable, "-m", "tuibend.cli", "render", str(tmp_path / "in.wav"), "-o",
                             str(tmp_path / "never.wav"), "--model", str(solo_model_dir), "--scene", str(broken)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "broken.toml: bend[1].point: 'fc7'" in result.stderr
    assert not (tmp_path / "never.wav").exists()


@pytest.mark.slow
def test_bundled_scenes_load_bind_and_change_the_sound(choir_model, golden):
    """Every bundled scene fits the bundled default model, stays finite, changes its sound and keeps
    its level within the level match's reach of the unbent one (+-30 dB, brought back to the player's
    level over a couple of seconds) and within 20 dB of it, so that a recall never jumps further. Rendered by
    the native kernel, as the engine plays them (its parity with TensorFlow is tests/test_native.py's)."""
    from pathlib import Path

    from tuibend.bend.units import unit_statistics
    from tuibend.pitch.analysis import Features
    from tuibend.render import render_features

    scenes = sorted((Path(__file__).parents[1] / "tuibend" / "data" / "scenes").glob("*.toml"))
    assert len(scenes) >= 8
    f0 = golden["f0_hz"][:500] * 2.0 ** np.round((choir_model.statistics.mean_pitch - 69) / 12)  # its register
    features = Features(f0.astype(np.float32), np.ones(500, np.float32), golden["loudness_db"][:500])
    plain = render_features(choir_model, features, native=True)
    statistics = unit_statistics(choir_model, None)
    for path in scenes:
        scene = load_scene(path).check(point_widths(choir_model.config.decoder), str(path))
        bent = render_features(choir_model, features, scene=scene, unit_statistics=statistics, native=True)
        assert np.all(np.isfinite(bent)), path.name
        assert relative_error(bent, plain) > 0.05, path.name
        level_change_db = 10 * np.log10(np.mean(bent ** 2) / np.mean(plain ** 2))
        assert abs(level_change_db) < 20.0, f"{path.name}: {level_change_db:+.1f} dB"


def _run_blocks(transform: str, activations: np.ndarray, block: int, **params) -> np.ndarray:
    """Feeds [frames, units] activations through a one-bend rig block by block."""
    rig = BendRig([Bend("fc1", transform, 1.0, params=params)], WIDTHS, block)
    controller = BendController(rig, 250.0, smoothing_seconds=0.0)
    out = []
    for start in range(0, len(activations), block):
        controller.advance()
        out.append(rig.hook("fc1", tf.constant(activations[None, start:start + block])).numpy()[0])
    return np.concatenate(out)


def test_noise_is_fresh_every_block_and_repeats_with_its_seed():
    """The noise transform draws new noise each block (seeded by the block number the controller
    writes), and a reset run draws the same again."""
    zeros = np.zeros((12, 8), np.float32)
    first = _run_blocks("noise", zeros, 4, amount=1.0)
    blocks = first.reshape(3, 4, 8)
    assert not np.allclose(blocks[0], blocks[1]) and not np.allclose(blocks[1], blocks[2])
    np.testing.assert_array_equal(_run_blocks("noise", zeros, 4, amount=1.0), first)


def test_freeze_holds_across_blocks():
    a = np.random.default_rng(1).normal(size=(12, 8)).astype(np.float32)
    np.testing.assert_allclose(_run_blocks("freeze", a, 4, rate=0.0), np.repeat(a[:1], 12, axis=0), atol=1e-6)
    held = _run_blocks("freeze", a, 4, rate=125.0)  # a new sample every second frame
    np.testing.assert_allclose(held, np.repeat(a[::2], 2, axis=0), atol=1e-6)


def test_rig_reset_forgets_held_activations():
    rig = BendRig([Bend("fc1", "freeze", 1.0)], WIDTHS, 2)
    controller = BendController(rig, 250.0, smoothing_seconds=0.0)
    first, second = np.ones((1, 2, 8), np.float32), np.full((1, 2, 8), 5.0, np.float32)
    controller.advance()
    rig.hook("fc1", tf.constant(first))
    rig.reset()
    controller.restart()  # a fresh scene start: the next frame is sampled again
    controller.advance()
    np.testing.assert_allclose(rig.hook("fc1", tf.constant(second)).numpy(), 5.0)


def test_smooth_is_a_one_pole_low_pass_continuous_across_blocks():
    a = np.random.default_rng(2).normal(size=(20, 8)).astype(np.float32)
    alpha = 1.0 - np.exp(-1.0 / (0.02 * 250.0))
    expected, previous = [], np.zeros(8)
    for frame in a:
        previous = previous + alpha * (frame - previous)
        expected.append(previous)
    np.testing.assert_allclose(_run_blocks("smooth", a, 4, seconds=0.02), np.array(expected), atol=1e-5)
    np.testing.assert_allclose(_run_blocks("smooth", a, 5, seconds=0.02), np.array(expected), atol=1e-5)


def test_permute_swaps_units_with_a_seeded_permutation(activations):
    out = _apply("permute", activations)[0]
    permutation = np.random.default_rng([0, 1]).permutation(8)
    np.testing.assert_allclose(out, activations[:, permutation], atol=1e-6)
    assert not np.allclose(out, activations)


def test_live_moves_are_recorded_into_a_lane_and_played_back():
    rig = BendRig([Bend("fc1", "scale", 0.5)], WIDTHS, 25)  # blocks of 0.1 s
    controller = BendController(rig, 250.0)
    controller.record(0, "proportion")
    for block, value in enumerate([0.5, 0.5, 0.9, 0.9, 0.1, 0.1]):
        if block in (2, 4):
            controller.set(0, "proportion", value)
        controller.block_values()
    lane = controller.stop_recording(0, "proportion", curve="step")
    assert lane.times == [0.0, 0.2, 0.4] and lane.values == [0.5, 0.9, 0.1]
    controller.restart()
    played = np.concatenate([controller.block_values()[rig.rows[(0, "proportion")]] for _ in range(6)])
    np.testing.assert_allclose(played[[0, 49, 50, 99, 100, 149]], [0.5, 0.5, 0.9, 0.9, 0.1, 0.1])


def test_restart_keeps_landed_morphs_and_drops_recordings():
    rig = BendRig([Bend("fc1", "scale", 0.2)], WIDTHS, 5)
    controller = BendController(rig, 250.0)
    controller.morph({(0, "proportion"): 0.9}, seconds=0.1)
    for _ in range(10):
        controller.block_values()
    controller.record(0, "gain")
    controller.restart()
    values = controller.block_values()
    np.testing.assert_allclose(values[rig.rows[(0, "proportion")]], 0.9, atol=1e-6)
    controller.set(0, "gain", 3.0)  # no recording any more, and no error
    with pytest.raises(KeyError):
        controller.stop_recording(0, "gain")


def test_controls_from_other_threads_never_break_a_block():
    import threading

    rig = BendRig([Bend("fc1", "oscillate", 0.5), Bend("gru", "scale", 0.5)], WIDTHS, 4)
    controller = BendController(rig, 250.0, {(1, "gain"): Lfo("sine", rate_hz=2.0)})
    stop = threading.Event()
    failures = []

    def performer():
        rng = np.random.default_rng(0)
        try:
            while not stop.is_set():
                action = rng.integers(5)
                if action == 0:
                    controller.set(0, "depth", float(rng.random()))
                elif action == 1:
                    controller.morph({(0, "proportion"): float(rng.random())}, 0.05)
                elif action == 2:
                    controller.record(1, "gain")
                elif action == 3 and (1, "gain") in controller._recorders:
                    controller.stop_recording(1, "gain")
                else:
                    controller.restart()
        except Exception as error:
            failures.append(error)

    thread = threading.Thread(target=performer)
    thread.start()
    try:
        for _ in range(3000):
            assert np.all(np.isfinite(controller.block_values()))
    finally:
        stop.set()
        thread.join()
    assert not failures


def test_the_kernels_block_values_equal_numpys():
    """Faders gliding and held, morphs, a lane, a recording, restarts and every derived row (an oscillator's phase,
    a sample-and-hold's refresh frames, a smoother's coefficient): the kernel's fill gives numpy's values, block
    after block, and leaves the controller where numpy's does."""
    bends = [Bend("fc1", "oscillate", 0.3, params={"freq": 3.0, "depth": 0.5}),
             Bend("fc2", "freeze", 0.4, params={"rate": 7.0}), Bend("gru", "smooth", 0.2, params={"seconds": 0.1}),
             Bend("fc2", "scale", 0.5, params={"gain": 1.5})]
    lanes = {(3, "gain"): Lfo("sine", 2.0)}
    controllers = [BendController(BendRig(bends, {**WIDTHS, "fc2": 8}, 4, graph=False), 250.0, lanes, fill=fill)
                   for fill in (numpy_fill, KernelFill)]
    rng = np.random.default_rng(5)
    refresh_row, phase_row = controllers[0].rig.rows[(1, "refresh")], controllers[0].rig.rows[(0, "phase")]
    for block in range(400):
        moves = [("set", (0, "freq"), 0.5 + 20 * rng.random()), ("set", (1, "rate"), 60 * rng.random()),
                 ("set", (2, "seconds"), rng.random()), ("morph", (0, "proportion"), rng.random())]
        move = moves[int(rng.integers(len(moves)))] if rng.random() < 0.3 else None
        for controller in controllers:
            if move is not None and move[0] == "set":
                controller.set(*move[1], move[2])
            elif move is not None:
                controller.morph({move[1]: move[2]}, 0.05)
            if block == 150:
                controller.record(0, "depth")
            if block == 200:
                controller.stop_recording(0, "depth")
            if block % 130 == 129:
                controller.restart()
        numpy_values, kernel_values = (controller.block_values() for controller in controllers)
        np.testing.assert_array_equal(kernel_values[refresh_row], numpy_values[refresh_row])
        np.testing.assert_allclose(kernel_values[phase_row], numpy_values[phase_row], rtol=0, atol=1e-5)
        # within a float32 step of 1: the smoother's 1 - exp(-x) through two libraries' expf
        np.testing.assert_allclose(kernel_values, numpy_values, rtol=1e-6, atol=2.5e-7)
        np.testing.assert_allclose(controllers[1].state.current, controllers[0].state.current, rtol=1e-9)
        np.testing.assert_allclose(controllers[1].state.memory, controllers[0].state.memory, rtol=1e-6, atol=1e-6)
    assert np.unique(numpy_values[phase_row]).size == 4  # the oscillator ran, the faders moved


def test_every_derived_row_the_registry_names_has_its_derivation():
    from tuibend.bend.derive import DERIVATIONS
    from tuibend.bend.registry import SPECS

    assert {name: spec.derived for name, spec in SPECS.items() if spec.derived} == {
        name: (derivation.row,) for name, derivation in DERIVATIONS.items()}
    assert all(derivation.source in SPECS[name].params for name, derivation in DERIVATIONS.items())
