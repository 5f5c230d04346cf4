"""The native block kernel against TensorFlow's compiled stream: same input, same bends, same noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import BUNDLED_MODEL, DEMO_INPUT, relative_error

from tuibend.bend.registry import Bend
from tuibend.bend.rig import BendController, BendRig
from tuibend.bend.transforms import TRANSFORMS
from tuibend.engine.chains import build_chain
from tuibend.engine.session import file_player
from tuibend.model.layout import point_widths
from tuibend.model.store import read_model
from tuibend.native import (
    VARIANT_ENV,
    NativeUnavailable,
    build,
    cached_build,
    library,
    packaged,
    runnable_variants,
)
from tuibend.native.control import KernelFill
from tuibend.native.stream import TRANSFORM_IDS, TRANSFORM_ROWS, NativeStream
from tuibend.native.variants import variants_for

SECONDS = 3.0
# Where each transform is tried, and its parameters: the first two ways the README's scenes use it.
TRANSFORM_CASES = {
    "oscillate": ("fc1", {"freq": 3.0, "depth": 0.8}),
    "threshold": ("fc2", {"thresh": 0.3}),
    "invert": ("gru", {}),
    "ablate": ("fc1", {}),
    "scale": ("fc2", {"gain": -1.5}),
    "offset": ("harmonics", {"amount": 1.5}),
    "clamp": ("gru", {"low": -0.2, "high": 0.3}),
    "quantise": ("f0_stack", {"step": 0.4}),
    "freeze": ("fc2", {"rate": 7.0}),
    "smooth": ("fc2", {"seconds": 0.2}),
    "permute": ("ld_stack", {}),
}


@pytest.fixture(scope="module")
def voice(choir_model):
    """The demo voice's prepared features: f0 and loudness at the frame rate."""
    features = file_player(choir_model, DEMO_INPUT, loop=False).features
    frames = int(SECONDS * features.frame_rate)
    return features.f0_hz[:frames].astype(np.float32), features.loudness_db[:frames].astype(np.float32)


def play_both(model, bends, voice, block_frames, moves=None, seed=0, bfloat16=False, int8=None):
    """The voice through TensorFlow's stream and the native one, block by block, with the same
    white noise and the same fader moves (``moves(controller, block)``); returns both takes."""
    widths = point_widths(model.config.decoder)
    graph_rig, plain_rig = BendRig(bends, widths, block_frames), BendRig(bends, widths, block_frames, graph=False)
    rate = model.config.frame_rate
    controllers = [BendController(graph_rig, rate), BendController(plain_rig, rate)]
    streams = [model.stream(block_frames, hook=graph_rig.hook, seed=seed),
               NativeStream(model, plain_rig, block_frames, seed, bfloat16, int8)]
    assert streams[1].bfloat16 == (bfloat16 and cpu_has_bfloat16())
    f0, loudness = voice
    rng = np.random.default_rng(7)
    takes = ([], [])
    for block in range(len(f0) // block_frames):
        window = slice(block * block_frames, (block + 1) * block_frames)
        noise = rng.uniform(-1.0, 1.0, block_frames * model.config.hop).astype(np.float32)
        for controller, stream, take in zip(controllers, streams, takes, strict=True):
            if moves is not None:
                moves(controller, block)
            controller.advance()
            take.append(stream.step(f0[window], loudness[window], noise))
    return np.concatenate(takes[0]), np.concatenate(takes[1])


@pytest.fixture(scope="module")
def unbent_take(choir_model, voice):
    """TensorFlow's take of the voice unbent in blocks of 4 frames (play_both's noise): what a bend changes."""
    return play_both(choir_model, [], voice, 4)[0]


@pytest.mark.quick
# every path of the layers' frame grouping (the quick tier: one frame, and a tile's four)
@pytest.mark.parametrize("block_frames", [1, pytest.param(2, marks=pytest.mark.slow), 4,
                                          pytest.param(16, marks=pytest.mark.slow)])
def test_native_stream_equals_tensorflow_unbent(choir_model, voice, block_frames):
    expected, native = play_both(choir_model, [], voice, block_frames)
    assert np.sqrt(np.mean(expected ** 2)) > 1e-3  # the voice sounds
    assert relative_error(native, expected) < 1e-5


def cpu_has_bfloat16() -> bool:
    """Whether the loaded build runs bfloat16 layers (the AVX512-BF16 one)."""
    return library().build == "avx512bf16"


@pytest.mark.parametrize(("size", "tolerance"), [("small", 0.01), ("full", 0.02)])
def test_bfloat16_layers_stay_near_float32(choir_model, solo_model, voice, size, tolerance):
    """bfloat16 weights and layer inputs (float32 sums) move the sound by well under -34 dB (measured:
    0.3 % small, 0.7 % full); where the CPU lacks AVX512-BF16 the kernel stays float32, exactly."""
    model = choir_model if size == "small" else solo_model
    bends = [Bend("fc1", "oscillate", 0.3, params={"freq": 3.0, "depth": 0.5}), Bend("gru", "ablate", 0.2)]
    expected, native = play_both(model, bends, voice, 4, bfloat16=True)
    error = relative_error(native, expected)
    print(f"bfloat16 {size}: {error:.2e} relative to TensorFlow's float32")
    if cpu_has_bfloat16():
        assert 1e-4 < error < tolerance
    else:
        assert error < 1e-5


@pytest.mark.parametrize(("size", "tolerance"), [("small", 0.01), ("full", 0.02)])
def test_the_recurrence_in_8_bits_stays_near_float32(choir_model, solo_model, voice, size, tolerance):
    """The GRU's recurrent kernel in 8 bits beside bfloat16 layers (where the CPU has AVX512-VNNI) stays within the
    bfloat16 bound of TensorFlow's float32 (measured: 0.43-0.62 % small, 0.49-0.56 % full) and is not the bfloat16
    take; by default it runs with bfloat16 where the CPU has VNNI but no AMX, never in float32."""
    model = choir_model if size == "small" else solo_model
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    has_vnni = cpu_has_bfloat16() and " avx512_vnni" in cpuinfo
    rig = BendRig([], point_widths(model.config.decoder), 4, graph=False)
    assert NativeStream(model, rig, 4, bfloat16=True).int8 == (has_vnni and not library().amx)
    assert not NativeStream(model, rig, 4).int8 and NativeStream(model, rig, 4, int8=True).int8 == has_vnni
    bends = [Bend("fc1", "oscillate", 0.3, params={"freq": 3.0, "depth": 0.5}), Bend("gru", "ablate", 0.2)]
    takes = {}
    for int8 in (False, True):
        expected, takes[int8] = play_both(model, bends, voice, 4, bfloat16=True, int8=int8)
    error = relative_error(takes[True], expected)
    print(f"8-bit recurrence {size}: {error:.2e} relative to TensorFlow's float32")
    assert error < tolerance
    assert (relative_error(takes[True], takes[False]) > 1e-4) == has_vnni


@pytest.mark.parametrize("bfloat16", [False, True])
def test_the_block_size_changes_nothing_but_the_delay(choir_model, voice, bfloat16):
    """Blocks of 1, 2, 4, 16 and 64 frames (a render's: several tiles of rows) give the same take (the
    kernel's own noise is a function of the sample's place, each frame's arithmetic is the same however
    frames are grouped; the reverb's partitions follow the block, which changes only its rounding): no
    seam at any block edge."""
    widths = point_widths(choir_model.config.decoder)
    f0, loudness = voice
    n = 320  # frames, a multiple of every block
    takes = []
    for frames in (1, 2, 4, 16, 64):
        bends = [Bend("fc2", "smooth", 0.7, params={"seconds": 0.1}), Bend("gru", "scale", 0.5)]
        rig = BendRig(bends, widths, frames, graph=False)
        controller = BendController(rig, choir_model.config.frame_rate)
        stream = NativeStream(choir_model, rig, frames, seed=2, bfloat16=bfloat16)
        take = []
        for start in range(0, n, frames):
            controller.advance()
            take.append(stream.step(f0[start:start + frames], loudness[start:start + frames]))
        takes.append(np.concatenate(take))
    assert np.sqrt(np.mean(takes[0] ** 2)) > 1e-3
    for take in takes[1:]:
        assert relative_error(take, takes[0]) < 1e-5


def os_threads() -> int:
    return len(list(Path("/proc/self/task").iterdir()))


@pytest.mark.quick
@pytest.mark.parametrize("bfloat16", [False, True])
def test_a_block_shared_among_threads_is_the_same_to_the_bit(choir_model, voice, bfloat16):
    """A render's blocks shared among threads (the stacks' and projections' panels and frames, the two synths)
    give the take one thread gives, to the bit, with bends at every point that keep memory or draw noise;
    three threads split the layers unevenly. The helpers are real threads, gone with their stream."""
    widths = point_widths(choir_model.config.decoder)
    f0, loudness = voice
    frames, n = 64, 320
    bends = [Bend("f0_stack", "quantise", 0.5, params={"step": 0.4}), Bend("fc1", "noise", 0.4),
             Bend("gru", "smooth", 0.6, params={"seconds": 0.1}), Bend("fc2", "freeze", 0.5, params={"rate": 7.0}),
             Bend("harmonics", "oscillate", 0.5, params={"freq": 3.0, "depth": 0.5})]
    takes = {}
    for threads in (1, 2, 3):
        rig = BendRig(bends, widths, frames, graph=False)
        controller = BendController(rig, choir_model.config.frame_rate)
        stream = NativeStream(choir_model, rig, frames, seed=3, bfloat16=bfloat16, threads=threads)
        assert stream.threads == threads
        if threads == 1:  # counted once TensorFlow has made the model's weights (its own threads started)
            before = os_threads()
        assert os_threads() == before + threads - 1
        take = []
        for start in range(0, n, frames):
            controller.set(2, "proportion", start / n)  # a fader moving
            controller.advance()
            take.append(stream.step(f0[start:start + frames], loudness[start:start + frames]))
        takes[threads] = np.concatenate(take)
        del stream
        assert os_threads() == before
    assert np.sqrt(np.mean(takes[1] ** 2)) > 1e-3
    np.testing.assert_array_equal(takes[2], takes[1])
    np.testing.assert_array_equal(takes[3], takes[1])


def test_native_stream_equals_tensorflow_on_the_full_model(solo_model, voice):
    """magenta-ddsp's solo instrument: three layers per stack, 100 harmonics."""
    expected, native = play_both(solo_model, [Bend("fc2", "scale", 0.5, params={"gain": 1.5})], voice, 4)
    assert relative_error(native, expected) < 1e-5


@pytest.mark.parametrize("transform", sorted(TRANSFORM_CASES))
def test_each_transform_equals_tensorflow(choir_model, voice, unbent_take, transform):
    """Every transform but noise (its generator differs), on a moving proportion fader."""
    point, params = TRANSFORM_CASES[transform]
    bends = [Bend(point, transform, 0.3, seed=3, params=params)]

    def moves(controller, block):
        controller.set(0, "proportion", 0.2 + 0.6 * (block % 40) / 40)

    expected, native = play_both(choir_model, bends, voice, 4, moves)
    assert relative_error(expected, unbent_take) > 1e-2  # the bend is heard
    # Threshold and quantise are discontinuous: a rounding apart on either side of a step moves a unit
    # a whole step; everywhere else the two agree to float rounding.
    tolerance = 2e-3 if transform in ("threshold", "quantise") else 1e-5
    assert relative_error(native, expected) < tolerance


@pytest.mark.quick
def test_a_chain_of_bends_equals_tensorflow(choir_model, voice):
    bends = [Bend("fc1", "oscillate", 0.6, params={"freq": 2.0, "depth": 0.5}), Bend("gru", "ablate", 0.3),
             Bend("fc2", "scale", 0.5, params={"gain": 1.5}), Bend("harmonics", "smooth", 0.5),
             Bend("fc1", "permute", 0.4, seed=5), Bend("amps", "offset", 0.8, params={"amount": 0.3})]
    expected, native = play_both(choir_model, bends, voice, 4)
    assert relative_error(native, expected) < 1e-5


def test_noise_bend_is_fresh_each_block_repeats_with_its_seed_and_as_strong_as_tensorflow(choir_model, voice,
                                                                                          unbent_take):
    """The noise transform's generator is the kernel's own: not equal to TensorFlow's draws, but the
    same in distribution, so the bend changes the sound by as much."""
    bends = [Bend("fc2", "noise", 1.0, seed=4, params={"amount": 0.5})]
    expected, native = play_both(choir_model, bends, voice, 4)
    _, again = play_both(choir_model, bends, voice, 4)
    _, other_seed = play_both(choir_model, [Bend("fc2", "noise", 1.0, seed=5, params={"amount": 0.5})], voice, 4)
    np.testing.assert_array_equal(native, again)
    assert relative_error(other_seed, native) > 1e-2
    change_tf, change_native = relative_error(expected, unbent_take), relative_error(native, unbent_take)
    assert change_tf > 0.05
    assert 0.7 < change_native / change_tf < 1.4


def test_own_white_noise_is_as_loud_as_tensorflows(choir_model, voice):
    """Left to draw its own noise, the kernel's filtered noise has the level of TensorFlow's uniform noise
    (within 5 %, averaged over four seeds: a model's unvoiced noise may sit in a few frames, so one draw's
    level varies by several per cent); TensorFlow's own stream is heard once as the anchor."""
    widths = point_widths(choir_model.config.decoder)
    f0, loudness = voice
    quiet = np.full_like(f0, 0.0)  # unvoiced: only the noise synth sounds
    blocks = range(0, len(f0) - 3, 4)

    def level(stream, noises=None) -> float:
        take = [stream.step(quiet[i:i + 4], loudness[i:i + 4], *([] if noises is None else [next(noises)]))
                for i in blocks]
        return float(np.sqrt(np.mean(np.concatenate(take) ** 2)))

    def native(seed: int) -> NativeStream:
        return NativeStream(choir_model, BendRig([], widths, 4, graph=False), 4, seed)

    tensorflow = level(choir_model.stream(4, seed=1))
    assert tensorflow > 1e-5  # a model's unvoiced noise: audible, however much of it training left
    own = np.mean([level(native(seed)) for seed in range(1, 5)])
    uniform = np.mean([level(native(0), iter(np.random.default_rng(seed).uniform(-1, 1, (len(blocks), 256))
                                             .astype(np.float32))) for seed in range(1, 5)])
    print(f"own {own:.3e}, uniform {uniform:.3e}, tensorflow {tensorflow:.3e}")
    assert abs(own / uniform - 1.0) < 0.05
    assert abs(uniform / tensorflow - 1.0) < 0.15  # one draw of TensorFlow's against four of the same law


def test_reset_and_continue_from_carry_or_clear_every_state(choir_model, voice):
    """continue_from carries the GRU, phases, filter and reverb tails over and starts the bends' memory
    afresh (as the engine resets a TensorFlow chain's rig on a switch); reset clears everything."""
    widths = point_widths(choir_model.config.decoder)
    f0, loudness = voice
    bends = [Bend("fc2", "smooth", 1.0, params={"seconds": 0.5})]

    def chain():
        rig = BendRig(bends, widths, 4, graph=False)
        return BendController(rig, choir_model.config.frame_rate), NativeStream(choir_model, rig, 4)

    def play(pair, blocks, shift=0.0):
        controller, stream = pair
        out = []
        for start in blocks:
            controller.advance()
            out.append(stream.step(f0[start:start + 4], loudness[start:start + 4] + shift))
        return np.concatenate(out)

    playing, returning, fresh = chain(), chain(), chain()
    first = play(playing, range(0, 200, 4))
    play(returning, range(0, 200, 4), shift=-20.0)  # a chain played before, its smoothed units elsewhere
    returning[1].continue_from(playing[1])
    fresh[1].continue_from(playing[1])
    after = [play(pair, [200]) for pair in (returning, fresh)]
    np.testing.assert_array_equal(after[0], after[1])  # no memory of its last turn
    assert relative_error(after[1], play(playing, [200])) > 1e-3  # the bend's memory does shape the sound
    playing[1].reset()
    np.testing.assert_array_equal(play(playing, range(0, 200, 4)), first)  # reset: as new
    short = NativeStream(choir_model, BendRig([], widths, 2, graph=False), 2)
    with pytest.raises(ValueError, match="same model and block size"):
        short.continue_from(playing[1])


def test_a_model_read_without_tensorflow_plays_as_the_loaded_one(choir_model, voice):
    """The kernel takes its weights from the model file's arrays (no TensorFlow) or from the TensorFlow model's
    variables: the same take, sample for sample."""
    rig = BendRig([Bend("fc2", "scale", 0.5, params={"gain": -1.0})], point_widths(choir_model.config.decoder), 16,
                  graph=False)
    takes = []
    for model in (read_model(BUNDLED_MODEL), choir_model):
        stream = NativeStream(model, rig, 16, seed=3)
        takes.append(np.concatenate([stream.step(voice[0][start:start + 16], voice[1][start:start + 16])
                                     for start in range(0, 160, 16)]))
    assert np.sqrt(np.mean(takes[1] ** 2)) > 1e-3
    np.testing.assert_array_equal(takes[0], takes[1])


def test_a_model_with_linear_amplitude_interpolation(choir_model, voice):
    """ddsp's other amplitude resampling ('linear', a model's config may ask it) is followed too."""
    from dataclasses import replace

    from tuibend.model.timbre import TimbreModel

    linear = TimbreModel(replace(choir_model.config, amp_resample_method="linear"), choir_model.weights(),
                         choir_model.statistics)
    expected, native = play_both(linear, [], voice, 4)
    window, _ = play_both(choir_model, [], voice, 4)
    assert relative_error(expected, window) > 1e-4  # the two methods differ
    assert relative_error(native, expected) < 1e-5


def test_the_output_gain_scales_every_path_alike(choir_model, voice):
    """A model's calibrated output gain (+6.02 dB: twice the amplitude) reaches the whole-signal render,
    TensorFlow's stream and the kernel, and changes nothing else."""
    from dataclasses import replace

    from tuibend.model.timbre import TimbreModel

    config = choir_model.config
    louder = TimbreModel(replace(config, output_gain_db=config.output_gain_db + 20 * np.log10(2.0)),
                         choir_model.weights(), choir_model.statistics)
    streamed, native = play_both(louder, [], voice, 4)
    plain_streamed, plain_native = play_both(choir_model, [], voice, 4)
    assert relative_error(streamed, 2 * plain_streamed) < 1e-5
    assert relative_error(native, 2 * plain_native) < 1e-5
    assert relative_error(louder.render(*voice), 2 * choir_model.render(*voice)) < 1e-5


def test_a_block_size_the_kernel_cannot_take_is_refused(choir_model):
    rig = BendRig([], point_widths(choir_model.config.decoder), 3, graph=False)
    with pytest.raises(ValueError, match=r"192-sample blocks .*a power of two up to 4096"):
        NativeStream(choir_model, rig, 3)
    with pytest.raises(ValueError, match="rig is for blocks of 3 frames, the stream for 4"):
        NativeStream(choir_model, rig, 4)  # its values would be read past their end


def test_the_engines_native_chains_fill_their_values_in_the_kernel(choir_model):
    chain = build_chain(read_model(BUNDLED_MODEL), [Bend("fc1", "oscillate", 0.3)], 4, None, 0, native=True)
    assert chain.fill is KernelFill
    rig = BendRig([Bend("fc1", "oscillate", 0.3)], point_widths(choir_model.config.decoder), 4, graph=False)
    controller = BendController(rig, 250.0)
    fill = KernelFill(controller.plan, controller.state)
    with pytest.raises(ValueError, match="float32 expected"):
        fill(np.zeros((3, 4), np.float32), 0.0)  # the kernel never writes past a wrong array


MEMORY_ACCOUNTING = Path("/proc/self/smaps_rollup")
HUGE_PAGES_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def resident_kib() -> tuple[int, int]:
    """This process' resident memory and the share of it in anonymous huge pages, in KiB."""
    fields = dict(line.split(":", 1) for line in MEMORY_ACCOUNTING.read_text().splitlines()[1:])
    return int(fields["Rss"].split()[0]), int(fields["AnonHugePages"].split()[0])


@pytest.mark.skipif(not MEMORY_ACCOUNTING.exists(), reason="reads Linux's per-process memory accounting")
def test_a_streams_buffers_lie_in_huge_pages_and_leave_with_it(choir_model):
    """Every buffer of a stream comes from an arena of its own, in 2 MiB pages where the system offers them
    (the weights a cold block reads take a few translations), and goes back whole when the stream goes."""
    rig = BendRig([], point_widths(choir_model.config.decoder), 4, graph=False)
    NativeStream(choir_model, rig, 4, bfloat16=True)  # whatever a first stream sets up for good
    resident, huge = resident_kib()
    stream = NativeStream(choir_model, rig, 4, bfloat16=True)
    if HUGE_PAGES_SETTING.exists() and "[never]" not in HUGE_PAGES_SETTING.read_text():
        assert resident_kib()[1] - huge >= 2048  # its 3.8 MB of bfloat16 weights: at least one whole page
    del stream
    for _ in range(20):
        NativeStream(choir_model, rig, 4, bfloat16=True)  # made and dropped: 4 MB or more each if kept
    assert resident_kib()[0] - resident < 16 * 1024


def test_the_kernel_knows_every_transform():
    assert set(TRANSFORM_IDS) == set(TRANSFORMS)
    assert set(TRANSFORM_ROWS) | {"invert", "ablate", "permute"} == set(TRANSFORMS)


def test_a_build_replaces_older_ones(tmp_path):
    (tmp_path / "block-portable-0123456789abcdef.so").write_bytes(b"an older source's build")
    (tmp_path / "block-avx2-0123456789abcdef.so").write_bytes(b"another build, kept")
    build(tmp_path / "block-portable-fedcba9876543210.so")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["block-avx2-0123456789abcdef.so",
                                                                "block-portable-fedcba9876543210.so"]


def test_no_compiler_or_a_failed_build_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    with pytest.raises(NativeUnavailable, match="could not run"):
        build(tmp_path / "block.so")
    monkeypatch.setenv("CC", "false")  # a compiler that fails
    with pytest.raises(NativeUnavailable, match="did not compile"):
        build(tmp_path / "block.so")
    assert not (tmp_path / "block.so").exists()
    monkeypatch.delenv("CC")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(NativeUnavailable, match=r"cannot be built into .*XDG_CACHE_HOME"):
        build(tmp_path / "a-file" / "block.so")  # a cache folder that cannot be made


@pytest.fixture
def fresh_library(monkeypatch):
    """The kernel loaded again under the test's environment, and again after it."""
    library.cache_clear()
    yield monkeypatch
    library.cache_clear()


@pytest.mark.parametrize("variant", runnable_variants())
def test_every_build_this_cpu_runs_equals_tensorflow(fresh_library, choir_model, voice, variant):
    """Each build the package carries (AVX512-BF16, AVX2/FMA, portable) that this CPU runs: the same sound
    as TensorFlow's stream, bent and unbent; bfloat16 layers only in the AVX512-BF16 build."""
    fresh_library.setenv(VARIANT_ENV, variant)
    assert library().build == variant
    expected, native = play_both(choir_model, [], voice, 4)
    assert relative_error(native, expected) < 1e-5
    bends = [Bend("fc2", "oscillate", 0.6, params={"freq": 4.0, "depth": 1.0}), Bend("gru", "clamp", 0.5)]
    expected, native = play_both(choir_model, bends, voice, 4)
    assert relative_error(native, expected) < 1e-5
    rounded, exact = play_both(choir_model, [], voice, 4, bfloat16=True)
    assert relative_error(exact, rounded) < (0.01 if variant == "avx512bf16" else 1e-5)


def test_the_kernel_builds_with_clang_and_plays_the_same(fresh_library, tmp_path, choir_model, voice):
    """A checkout without the package's builds compiles them on first use, here with clang, into the
    user's cache: every build this CPU runs equals TensorFlow."""
    fresh_library.setattr("tuibend.native.packaged", lambda variant: None)
    fresh_library.setenv("XDG_CACHE_HOME", str(tmp_path))
    fresh_library.setenv("CC", "clang")
    for variant in runnable_variants():
        fresh_library.setenv(VARIANT_ENV, variant)
        library.cache_clear()
        assert library().build == variant and cached_build(variant).is_relative_to(tmp_path)
        expected, native = play_both(choir_model, [], voice, 4)
        assert relative_error(native, expected) < 1e-5


def test_the_kernel_cross_compiles_for_arm():
    """ARM keeps building: the portable build (NEON through the compiler's vectors) for aarch64."""
    import tempfile

    assert variants_for("aarch64") == ["portable"]
    assert variants_for("x86_64") == ["avx512bf16", "avx2", "portable"]
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "block-portable-arm.so"
        build(target, "portable", cc="aarch64-linux-gnu-gcc")
        header = target.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64


def test_a_build_of_another_source_is_never_loaded(fresh_library, tmp_path):
    """The package's builds are stamped with their source's digest: a checkout whose block.c changed
    compiles it again instead of loading a build of the old source."""
    assert packaged("portable") is not None
    changed = tmp_path / "block.c"
    changed.write_text(Path(__file__).parents[1].joinpath("tuibend", "native", "block.c").read_text() + "\n/* */\n")
    fresh_library.setattr("tuibend.native.SOURCE", changed)
    assert packaged("portable") is None


def test_the_kernel_states_its_contract_and_a_mismatch_is_refused(fresh_library, monkeypatch):
    """The kernel reports its ABI (version, struct sizes, transforms in id order, bend point numbering);
    Python numbers transforms from the registry and refuses a kernel that differs, naming what differs."""
    from tuibend.bend.registry import SPECS
    from tuibend.native import available

    lib = library()
    assert [lib.tb_transform_name(i).decode() for i in range(len(SPECS))] == list(TRANSFORM_IDS) == list(SPECS)
    assert set(TRANSFORM_ROWS) | {"invert", "ablate", "permute"} == set(SPECS)
    from tuibend.native import ABI_VERSION

    monkeypatch.setattr("tuibend.native.ABI_VERSION", 99)
    library.cache_clear()
    assert f"does not match this tuibend: version {ABI_VERSION} (expected 99)" in available()


def _crepe_windows(audio: np.ndarray, count: int) -> np.ndarray:
    """Raw CREPE windows every 10 ms, the first in the zeros before the audio (a silent frame)."""
    from tuibend.pitch.analysis import centred_frames

    return np.ascontiguousarray(centred_frames(audio, 1024, 160, count))


@pytest.mark.quick
@pytest.mark.parametrize("variant", runnable_variants())
def test_native_crepe_equals_torchcrepe_in_every_build(fresh_library, crepe_reference, variant):
    """CREPE tiny in each build this CPU runs (float32 vectors: 16, 8 or 4 wide): activations within the
    fixtures' 1e-4 of torchcrepe's on both instruments."""
    from tuibend.native.crepe import NativeCrepe

    fresh_library.setenv(VARIANT_ENV, variant)
    network = NativeCrepe("tiny")
    assert library().build == variant and network.precision == "float32"
    for name in ("flute", "choir"):
        activation = network.activation(crepe_reference[f"{name}_frames"])
        np.testing.assert_allclose(activation, crepe_reference[f"{name}_tiny_activation"], atol=1e-4)
    assert network.activation(np.zeros((0, 1024), np.float32)).shape == (0, 360)


@pytest.mark.quick
def test_native_crepe_pitch_equals_the_tensorflow_tracker(crepe_reference):
    """One native call (normalise, network, weighted argmax) gives TensorFlow's tracker's f0 and confidence
    on raw windows of both instruments, a silent window and a range limit included."""
    from tuibend.native.crepe import NativeCrepe
    from tuibend.pitch.crepe import Crepe, decode, normalise_frames
    from tuibend.pitch.trackers import make_tracker

    native = make_tracker("crepe-tiny", network=NativeCrepe("tiny"))
    reference = make_tracker("crepe-tiny")
    assert isinstance(reference.estimator, Crepe)
    for name in ("flute", "choir"):
        windows = _crepe_windows(crepe_reference[f"{name}_audio"], 48)
        f0, confidence = native.estimate(windows)
        expected_f0, expected_confidence = reference.estimate(windows)
        assert np.max(np.abs(1200 * np.log2(f0 / expected_f0))) < 0.05
        np.testing.assert_allclose(confidence, expected_confidence, atol=1e-4)
        assert expected_confidence[0] < 0.5 < np.median(expected_confidence)  # the silent frame, then the notes
        low, _ = native.estimator.estimate(windows, fmin=50.0, fmax=300.0)
        limited, _ = decode(reference.estimator.activation(normalise_frames(windows)), 50.0, 300.0)
        assert np.max(np.abs(1200 * np.log2(low / limited))) < 0.05 and np.max(low) <= 310.0


@pytest.mark.quick
def test_the_kernels_live_analysis_equals_the_streaming_analyzer():
    """The live analysis in one kernel call gives the numpy StreamingAnalyzer's frames, same count every block, on
    the demo voice with a rest and a breath, in blocks of 1 to 5000 samples (a call takes 4096 at most), for both
    loudness flavours and after a reset: pitch within 0.01 cent, confidence exactly (the same network on the same
    windows), loudness within 1e-4 dB (v3) and 0.01 dB (v1, whose per-bin dB read the FFT's rounding in the
    quietest bins). CREPE as the engine runs it (bfloat16 where the build has AVX512-BF16, in AMX tiles where the
    CPU has them; float32 elsewhere: the analysis around it is the same). It needs the kernel's CREPE, and says so."""
    from tuibend.audiofile import read_audio
    from tuibend.native.analysis import NativeAnalyzer
    from tuibend.native.crepe import NativeCrepe
    from tuibend.pitch.analysis import Features, StreamingAnalyzer
    from tuibend.pitch.trackers import make_tracker

    rng = np.random.default_rng(7)
    voice = read_audio(DEMO_INPUT, 16000)[:3 * 16000].copy()
    voice[16000:20000] = 0.0
    voice[28000:30000] = 0.02 * rng.standard_normal(2000)
    tracker = make_tracker("crepe-tiny", network=NativeCrepe("tiny", precision="bfloat16"))
    for flavour, loudness_db in (("v3", 1e-4), ("v1", 0.01)):
        numpy_side, kernel_side = StreamingAnalyzer(tracker, flavour), NativeAnalyzer(tracker, flavour)
        assert (kernel_side.loudness_lag, kernel_side.pitch_lag) == (numpy_side.loudness_lag, numpy_side.pitch_lag)
        for sizes in ([256], [1, 63, 1000, 5000, 17, 64, 333]):
            numpy_side.reset()
            kernel_side.reset()
            expected, got, start = [], [], 0
            for size in (sizes[i % len(sizes)] for i in range(len(voice))):
                if start >= len(voice):
                    break
                block = voice[start:start + size]
                expected.append(numpy_side.process(block))
                got.append(kernel_side.process(block))
                assert len(got[-1]) == len(expected[-1])
                start += size
            expected, got = Features.concatenate(expected), Features.concatenate(got)
            assert len(got) == len(voice) // 64 and 0.2 < np.mean(expected.confidence >= 0.5) < 0.9
            voiced = expected.f0_hz > 0
            assert np.array_equal(voiced, got.f0_hz > 0) and voiced[-1]
            assert np.max(np.abs(1200 * np.log2(got.f0_hz[voiced] / expected.f0_hz[voiced]))) < 0.01
            np.testing.assert_array_equal(got.confidence, expected.confidence)
            assert np.max(np.abs(got.loudness_db - expected.loudness_db)) < loudness_db
            assert np.ptp(expected.loudness_db) > 40  # the rest reaches the floor, the voice is far above it
    with pytest.raises(ValueError, match="the native analysis runs the kernel's CREPE, not yin's Yin"):
        NativeAnalyzer(make_tracker("yin"))


@pytest.mark.quick
def test_the_kernels_live_features_equal_numpys():
    """What a live input plays, in one kernel call a block (the downmix, the analysis, the onset pitch's YIN, the
    held pitch and the shift), equals LiveFeatures in numpy around the same network: stereo input with a NaN burst,
    a pitch shift and a resting pitch, notes after rests (onsets that take YIN's pitch, a low one for longer than
    CREPE's lag), blocks of 1 to 5000
    samples and a reset; the onset pitch off as well. The dry samples and confidence exactly, pitch within 0.01
    cent, loudness within 1e-4 dB."""
    from tuibend.audiofile import read_audio
    from tuibend.native.analysis import NativeAnalyzer
    from tuibend.native.crepe import NativeCrepe
    from tuibend.pitch.analysis import StreamingAnalyzer
    from tuibend.pitch.trackers import make_tracker

    voice = read_audio(DEMO_INPUT, 16000)[:4 * 16000].copy()
    for rest in (slice(12000, 16000), slice(30000, 33000), slice(45000, 47000)):
        voice[rest] = 0.0  # each note after it an onset
    low = np.arange(12000) / 16000  # then a low note, which CREPE takes longer to be sure of than YIN
    voice[52000:] = 0.3 * sum(np.sin(2 * np.pi * 75.0 * k * low) / k for k in range(1, 6)) * (low > 0.1)
    stereo = np.stack([voice, 0.5 * np.roll(voice, 3)], axis=1)  # the rests stay rests
    stereo[20000:20100, 1] = np.nan
    stereo[20200, 0] = np.inf
    tracker = make_tracker("crepe-tiny", network=NativeCrepe("tiny", precision="bfloat16"))
    numpy_analyzer, kernel_analyzer = StreamingAnalyzer(tracker), NativeAnalyzer(tracker)
    plays = {}
    for onset_pitch in (True, False):
        numpy_side = numpy_analyzer.live_features(180.0, 2 ** (3 / 12), onset_pitch)
        kernel_side = kernel_analyzer.live_features(180.0, 2 ** (3 / 12), onset_pitch)
        for sizes in ([256], [1, 63, 1000, 5000, 17, 64, 333]):
            numpy_side.reset()
            kernel_side.reset()
            expected, got, start, index = [], [], 0, 0
            while start < len(stereo):
                block = stereo[start:start + sizes[index % len(sizes)]]
                expected.append(numpy_side.process(block))
                got.append(kernel_side.process(block))
                assert len(got[-1].f0_hz) == len(expected[-1].f0_hz)
                start, index = start + len(block), index + 1
            joined = {name: [np.concatenate([getattr(part, name) for part in side]) for side in (expected, got)]
                      for name in ("dry", "f0_hz", "confidence", "loudness_db", "pitch_hz")}
            for name in ("dry", "confidence"):
                np.testing.assert_array_equal(joined[name][1], joined[name][0], err_msg=name)
            assert np.isfinite(joined["dry"][1]).all() and len(joined["f0_hz"][1]) == len(voice) // 64
            for name in ("f0_hz", "pitch_hz"):
                reference, kernel = joined[name]
                assert np.max(np.abs(1200 * np.log2(kernel / reference))) < 0.01, name
            np.testing.assert_allclose(joined["f0_hz"][1], joined["pitch_hz"][1] * np.float32(2 ** (3 / 12)))
            assert joined["pitch_hz"][1][0] == np.float32(180.0 / 2 ** (3 / 12))  # rests on the pitch given
            assert np.max(np.abs(joined["loudness_db"][1] - joined["loudness_db"][0])) < 1e-4
            plays[onset_pitch] = joined["pitch_hz"][1]
    moved = np.abs(1200 * np.log2(plays[True] / plays[False])) > 1
    assert 5 <= moved.sum() < 0.1 * len(moved)  # the onsets' first frames, and only they


def test_a_file_analysed_by_the_kernels_crepe_has_tensorflows_features():
    """A render through the kernel analyses a new file with the kernel's CREPE (no TensorFlow): the demo voice's
    features are TensorFlow's tracker's within float rounding, frame for frame."""
    from tuibend.audiofile import read_audio
    from tuibend.native.crepe import NativeCrepe
    from tuibend.pitch.files import analyze

    voice = read_audio(DEMO_INPUT, 16000)[:4 * 16000]
    native = analyze(voice, 16000, crepe=NativeCrepe)
    reference = analyze(voice, 16000)
    voiced = reference.confidence >= 0.5
    assert 0.3 < voiced.mean() < 1.0
    assert np.max(np.abs(1200 * np.log2(native.f0_hz[voiced] / reference.f0_hz[voiced]))) < 0.05
    np.testing.assert_allclose(native.confidence, reference.confidence, atol=1e-4)
    np.testing.assert_array_equal(native.loudness_db, reference.loudness_db)


def test_a_file_played_on_the_kernel_is_analysed_by_its_crepe(choir_model, tmp_path, monkeypatch):
    """`play` with a file not analysed before analyses it where the engine runs the model: the kernel's
    CREPE for the native kernel, TensorFlow's for TensorFlow's."""
    import soundfile

    from tuibend.audiofile import read_audio
    from tuibend.native import crepe

    made = []

    class Counted(crepe.NativeCrepe):
        def __init__(self, capacity: str, *args, **kwargs):
            made.append(capacity)
            super().__init__(capacity, *args, **kwargs)

    monkeypatch.setattr(crepe, "NativeCrepe", Counted)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # an empty analysis cache
    voice = read_audio(DEMO_INPUT, 16000)[:2 * 16000]
    players = {}
    for kernel, gain in (("native", 0.5), ("tensorflow", 0.25)):  # two files, each new to the cache
        path = tmp_path / f"{kernel}.wav"
        soundfile.write(path, voice * gain, 16000)
        players[kernel] = file_player(choir_model, path, loop=False, kernel=kernel)
        assert made == ["tiny"]
    voiced = players["tensorflow"].features.confidence >= 0.5
    assert voiced.mean() > 0.3
    assert np.median(np.abs(players["native"].features.f0_hz - players["tensorflow"].features.f0_hz)[voiced]) < 0.1


@pytest.mark.parametrize("vectors", [True, False])
def test_bfloat16_crepe_keeps_the_pitch_in_vectors_and_in_amx_tiles(crepe_reference, vectors):
    """bfloat16 where it is the faster: in AMX tiles where the CPU has AMX-BF16, in vectors on AMD's AVX512-BF16,
    float32 elsewhere; in vectors wherever the build has AVX512-BF16 when asked (the activations then within the
    bfloat16 bound of the TensorFlow test, f0 within 5 cents median). Each bfloat16 network differs from float32
    (it is not float32 run twice)."""
    from tuibend.native.crepe import NativeCrepe
    from tuibend.pitch.crepe import decode

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    has_bfloat16 = library().build == "avx512bf16"
    network = NativeCrepe("tiny", precision="bfloat16", vectors=vectors)
    assert library().amx == (has_bfloat16 and " amx_bf16" in cpuinfo)
    fastest = library().amx or "AuthenticAMD" in cpuinfo
    assert network.precision == ("bfloat16" if has_bfloat16 and (vectors or fastest) else "float32")
    assert network.tiles == (not vectors and library().amx)
    plain = NativeCrepe("tiny")
    assert (plain.precision, plain.tiles) == ("float32", False)  # float32 asked, float32 run
    for name in ("flute", "choir"):
        activation = network.activation(crepe_reference[f"{name}_frames"])
        expected = crepe_reference[f"{name}_tiny_activation"]
        assert np.max(np.abs(activation - expected)) < 0.03
        f0, _ = decode(activation, 50.0, 1000.0)
        reference, _ = decode(expected, 50.0, 1000.0)
        assert np.median(np.abs(1200 * np.log2(f0 / reference))) < 5.0
        rounding = np.max(np.abs(activation - plain.activation(crepe_reference[f"{name}_frames"])))
        assert (rounding > 1e-5) == (network.precision == "bfloat16")


def test_eight_bit_crepe_keeps_the_pitch_within_bfloat16s_bounds(crepe_reference):
    """CREPE with its first two convolutions, its last and its classifier in 8 bits (AVX512-VNNI, where the network
    runs bfloat16 vectors: AMD's Zen 4), what a live input runs: the activations within the bfloat16 bound of the
    TensorFlow test (0.03), the pitch of voiced frames within a cent and the confidence within 0.03 of float32's.
    Elsewhere it runs what bfloat16 runs."""
    from tuibend.native.crepe import NativeCrepe
    from tuibend.pitch.crepe import decode

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    network, bfloat16 = NativeCrepe("tiny", precision="int8"), NativeCrepe("tiny", precision="bfloat16")
    vectors = bfloat16.precision == "bfloat16" and not bfloat16.tiles
    assert network.precision == ("int8" if vectors and " avx512_vnni" in cpuinfo else bfloat16.precision)
    for name in ("flute", "choir"):
        frames, expected = crepe_reference[f"{name}_frames"], crepe_reference[f"{name}_tiny_activation"]
        activation = network.activation(frames)
        assert np.max(np.abs(activation - expected)) < 0.03
        f0, confidence = decode(activation, 50.0, 1000.0)
        reference, reference_confidence = decode(expected, 50.0, 1000.0)
        voiced = reference_confidence >= 0.5
        assert voiced.sum() > 20 and np.max(np.abs(1200 * np.log2(f0 / reference))[voiced]) < 1.0
        assert np.max(np.abs(confidence - reference_confidence)) < 0.03
        rounding = np.max(np.abs(activation - bfloat16.activation(frames)))
        assert (rounding > 1e-3) == (network.precision == "int8")  # not bfloat16 run again
    with pytest.raises(ValueError, match="unknown CREPE precision 'int4'"):
        NativeCrepe("tiny", precision="int4")


def test_a_capacity_whose_channels_come_in_threes_runs_in_the_kernels_tiles(crepe_reference):
    """CREPE large's middle layers have 96 channels: six vectors of 16, more than a tile keeps side by side. Its
    tiles then take two vectors at a time (three passes), in float32 and in the live input's 8 bits alike: random
    weights give TensorFlow's activations (float32 within 1e-4, the 8-bit layers within bfloat16's 0.03)."""
    from tuibend.native.crepe import NativeCrepe
    from tuibend.pitch.crepe import Crepe
    from tuibend.pitch.crepe_format import weight_shapes

    rng = np.random.default_rng(3)
    weights = {}
    for name, shape in weight_shapes("large").items():
        kind = name.rsplit("/", 1)[1]
        fan_in = int(np.prod(shape[:-1])) if kind == "kernel" else 1
        value = {"kernel": rng.standard_normal(shape) * 1.5 / np.sqrt(fan_in),
                 "bias": 0.05 * rng.standard_normal(shape),
                 "gamma": 1.0 + 0.1 * rng.standard_normal(shape), "beta": 0.1 * rng.standard_normal(shape),
                 "mean": 0.1 * rng.random(shape), "variance": 0.5 + rng.random(shape)}[kind]
        weights[name] = value.astype(np.float32)
    frames = crepe_reference["flute_frames"][:3]
    expected = Crepe("large", weights).activation(frames)
    assert np.std(expected) > 0.02 and np.ptp(expected) > 0.5  # a network that answers, not one that saturates
    np.testing.assert_allclose(NativeCrepe("large", weights).activation(frames), expected, atol=1e-4)
    assert np.max(np.abs(NativeCrepe("large", weights, precision="int8").activation(frames) - expected)) < 0.03


@pytest.mark.quick
def test_a_files_frames_shared_among_threads_give_the_same_estimates(crepe_reference):
    """A batch of frames as a file's analysis brings it, shared among three threads (each on a network of its
    own): the estimates one network gives, to the bit; a live block's frames stay on the caller's network."""
    from tuibend.native.crepe import SHARE_FRAMES, NativeCrepe, file_crepe

    frames = np.concatenate([crepe_reference["flute_frames"], crepe_reference["choir_frames"]])
    frames = np.resize(frames, (3 * SHARE_FRAMES + 5, frames.shape[1]))  # three uneven shares
    one, shared = NativeCrepe("tiny"), NativeCrepe("tiny", threads=3)
    assert (one.threads, shared.threads) == (1, 3)
    expected = one.estimate(frames)
    assert np.ptp(expected[0]) > 50.0  # pitches that differ from frame to frame
    calls = []
    pitch = shared._pitch
    shared._pitch = lambda handle, *rest: calls.append(handle.value) or pitch(handle, *rest)
    for got, want in zip(shared.estimate(frames), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert len(set(calls)) == 3  # each share on its own network
    calls.clear()
    for got, want in zip(shared.estimate(frames[:2]), one.estimate(frames[:2]), strict=True):
        np.testing.assert_array_equal(got, want)
    assert calls == [shared._handle.value]  # a live block's frames: the caller's network alone
    assert file_crepe("native", 2)("tiny").threads == 2


@pytest.mark.quick
def test_the_kernels_safety_chain_equals_numpys():
    """Guard, DC blocker and limiter in one kernel call give numpy's SafetyChain within float32 rounding, block by
    block with the state carried: a voice with a DC offset at several gains, bursts far over the ceiling (the gain
    glide and the tanh knee), blocks of 1 to 4096 samples, a release back to unity; a block with NaN or Inf is
    refused by both with the state untouched; a reset starts both afresh."""
    from tuibend.audiofile import read_audio
    from tuibend.native.safety import NativeSafety, safety_chain
    from tuibend.safety import SafetyChain

    rng = np.random.default_rng(3)
    voice = read_audio(DEMO_INPUT, 16000)[:4 * 16000] + np.float32(0.2)  # a DC offset to block
    voice[16000:20000] *= 40.0  # a blow-up: limited to the ceiling
    native, reference = safety_chain(16000, native=True), safety_chain(16000, native=False)
    assert isinstance(native, NativeSafety) and isinstance(reference, SafetyChain)
    start, limited, outputs = 0, 0, []
    for index, size in enumerate(int(size) for size in rng.choice([1, 63, 256, 256, 1000, 4096], 400)):
        block = voice[start:start + size]
        if not len(block):
            break
        start += size
        gain = (1.0, 2.0, 0.5)[index % 3]
        got, expected = native.process(block, gain), reference.process(block, gain)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        assert native.gain == pytest.approx(reference.limiter.gain, abs=1e-9)
        limited += native.gain < 1.0
        outputs.append(got)
        if index == 20:
            for bad in (np.nan, np.inf, -np.inf):
                broken = block.copy()
                broken[len(broken) // 2] = bad
                assert native.process(broken) is None and reference.process(broken) is None
    heard = np.concatenate(outputs)
    assert limited > 5 and np.max(np.abs(heard)) <= reference.limiter.ceiling  # the ceiling held, by both
    assert abs(float(np.mean(heard[-16000:]))) < 0.01 and native.gain > 0.999  # DC gone, gain recovered
    native.reset()
    reference.reset()
    block = voice[16000:16256]
    np.testing.assert_allclose(native.process(block), reference.process(block), rtol=0, atol=1e-6)


def gated_voice(seconds: float = 12.0) -> tuple[np.ndarray, np.ndarray]:
    """The demo voice (16 kHz) with rests of a -60 dBFS noise floor and one of digital silence, and each 64-sample
    frame's level (its RMS in dB, 20 dB up: the analysis' loudness scale): what a microphone gives the gate."""
    from tuibend.audiofile import read_audio

    voice = np.resize(read_audio(DEMO_INPUT, 16000), int(seconds * 16000))
    floor = np.random.default_rng(5).standard_normal(len(voice)).astype(np.float32) * np.float32(1e-3)
    for start_s, stop_s in ((2.0, 3.0), (4.5, 4.65), (5.0, 5.6), (8.0, 9.5)):
        voice[int(start_s * 16000):int(stop_s * 16000)] = floor[int(start_s * 16000):int(stop_s * 16000)]
    voice[int(10.0 * 16000):int(10.5 * 16000)] = 0.0  # an input connected late: no floor to learn from
    power = np.mean(np.square(voice.reshape(-1, 64), dtype=np.float64), axis=1)
    return voice, (10.0 * np.log10(power + 1e-12) + 20.0).astype(np.float32)


@pytest.mark.quick
@pytest.mark.parametrize("level_match", [True, False])
@pytest.mark.parametrize("gate", ["auto", "-25", "off"])
def test_the_kernels_gate_and_level_match_equal_pythons(gate, level_match):
    """``tb_dynamics_hear`` and ``tb_dynamics_shape`` give :class:`~tuibend.dynamics.Dynamics` within float32
    rounding, block by block with the state carried: a voice with rests in a noise floor and in digital silence,
    NaN loudness, the model answering with bursts the ceiling catches, a drone stretch, the threshold moved by a
    key and the gate reconfigured mid-stream, blocks shaped whole and in parts (as a render shapes them), then a
    reset. Each block: what the model hears to the bit, the output, the gate's state, floor, threshold and gain."""
    from tuibend.dynamics import Dynamics, GateSettings, LevelMatch, NoiseGate, parse_gate
    from tuibend.native.dynamics import NativeDynamics, NativeGate, dynamics_for

    voice, levels = gated_voice()
    levels[1100:1110] = np.nan  # an analysis that failed for ten frames while the player sang
    model_out = voice * np.float32(0.2)
    for onset_s in (3.0, 4.35, 9.5):  # a trained attack burst as notes start (and one the next note follows)
        model_out[int(onset_s * 16000):int(onset_s * 16000) + 1600] *= np.float32(16.0)

    def build() -> Dynamics:
        return Dynamics(NoiseGate(parse_gate(gate), 250, -80.0), LevelMatch(16000, 3.0, enabled=level_match), 64)

    reference = build()
    native = dynamics_for(build(), native=True)
    assert isinstance(native, NativeDynamics) and isinstance(native.gate, NativeGate)
    rng, frame, closed, caught, opened = np.random.default_rng(11), 0, 0, 0, 0
    while frame < len(levels):
        frames = int(rng.choice([4, 4, 4, 8, 1]))
        loudness = levels[frame:frame + frames] - np.float32(12.0)  # mapped into the model's range
        level = levels[frame:frame + frames]
        if frame >= 2000 and frame - frames < 2000:  # a key moves the threshold; a scene sets another gate
            reference.gate.offset_db = native.gate.offset_db = 4.0
        if frame >= 2500 and frame - frames < 2500 and gate != "off":
            settings = GateSettings(threshold_db=-30.0, hold_ms=40.0, release_ms=200.0)
            reference.gate.configure(settings)
            native.gate.configure(settings)
        heard = native.hear(loudness, level)
        np.testing.assert_array_equal(heard, reference.hear(loudness, level))
        samples = slice(64 * frame, 64 * (frame + len(level)))
        drone = 1200 <= frame < 1500
        pieces = [slice(0, len(level) * 64)] if frames != 8 else [slice(0, 128), slice(128, 320), slice(320, 512)]
        for piece in pieces:
            audio, dry = model_out[samples][piece], voice[samples][piece]
            np.testing.assert_allclose(native.shape(audio, dry, drone), reference.shape(audio, dry, drone),
                                       rtol=1e-5, atol=1e-7)
        assert native.gate.is_open == reference.gate.is_open
        assert native.gate.floor_db == pytest.approx(reference.gate.floor_db)
        assert native.gate.threshold_db == pytest.approx(reference.gate.threshold_db)
        assert native.level.gain_db == pytest.approx(reference.level.gain_db, abs=1e-5)
        closed += not reference.gate.is_open
        caught += reference.ceiling.reduction_db < -1.0
        opened += reference.level.gain_db != 0.0
        frame += frames
    if gate != "off":
        assert closed > 50  # the rests closed the gate...
    if level_match:
        assert caught > 3 and opened > 50  # ...the bursts met the ceiling and the level match moved
    blown_up = np.full(256, 1e20, np.float32)  # a bend blown up, finite: past float32's sums, no level to follow
    for audio in (blown_up, model_out[:256], model_out[256:512]):
        playing = np.full(4, 10.0, np.float32)
        np.testing.assert_array_equal(native.hear(playing, playing), reference.hear(playing, playing))
        with np.errstate(over="ignore"):
            np.testing.assert_allclose(native.shape(audio, voice[:256]), reference.shape(audio, voice[:256]),
                                       rtol=1e-5, atol=1e-7)
        assert native.level.gain_db == pytest.approx(reference.level.gain_db, abs=1e-5)
    for dynamics in (native, reference):
        dynamics.reset()
    np.testing.assert_array_equal(native.gate.process(levels[:300])[1], reference.gate.process(levels[:300])[1])
    faster = Dynamics(NoiseGate(GateSettings(), 2000, -80.0), LevelMatch(16000), 8)  # more frames a chunk than
    assert dynamics_for(faster, native=True) is faster  # the kernel holds: Python runs it
