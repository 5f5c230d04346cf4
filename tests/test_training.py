"""Datasets and training: real shards, a real short run, resume after a kill, two replicas."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile
from conftest import REPO

from tuibend.audiofile import AudioFileError
from tuibend.errors import InputError
from tuibend.training.dataset import DatasetError, build_dataset, iterate_examples, read_manifest
from tuibend.training.trainer import Trainer, TrainingConfig, batches, fresh_model, read_ahead, train


@pytest.fixture(scope="module")
def recordings(crepe_reference, tmp_path_factory):
    """The fixtures' flute (8.8 s) and choir (11.7 s) as files, the choir twice (at 44.1 kHz too)."""
    import soxr

    folder = tmp_path_factory.mktemp("recordings")
    soundfile.write(folder / "flute.wav", crepe_reference["flute_audio"], 16000)
    soundfile.write(folder / "choir.wav", crepe_reference["choir_audio"], 16000)
    soundfile.write(folder / "choir44.flac", soxr.resample(crepe_reference["choir_audio"], 16000, 44100), 44100)
    return folder


@pytest.fixture(scope="module")
def dataset(recordings, tmp_path_factory):
    folder = tmp_path_factory.mktemp("data") / "set"
    build_dataset([recordings], folder, tracker="yin", holdout=0.34, seed=2, noise_floors=(None,))
    return folder


def test_dataset_cuts_analysed_examples_into_shards(dataset):
    folder = dataset
    manifest = read_manifest(folder)
    # 8.8 s gives 5 examples of 4 s every 1 s, 11.7 s gives 8; held-out by whole recordings here (one chunk each).
    assert manifest["examples"]["train"] + manifest["examples"]["holdout"] == 5 + 8 + 8
    assert manifest["examples"]["holdout"] in (5, 8, 13, 16)
    example = next(iterate_examples(folder, "train", shuffle=False))
    assert example["audio"].shape == (64000,) and example["f0_hz"].shape == example["loudness_db"].shape == (1000,)
    train_audio = np.stack([e["audio"] for e in iterate_examples(folder, "train", shuffle=False)])
    for held in iterate_examples(folder, "holdout", shuffle=False):
        # No held-out second appears in a training example.
        assert not np.any(np.all(np.isclose(train_audio[:, :16000], held["audio"][:16000]), axis=1))
    with np.load(folder / "statistics.npz") as statistics:
        assert 60 < float(statistics["scalar/mean_pitch"]) < 80


def test_dataset_analyses_through_a_noise_floor_and_keeps_the_target_clean(recordings, tmp_path):
    clean = tmp_path / "clean"
    floored = tmp_path / "floored"
    build_dataset([recordings / "flute.wav"], clean, tracker="yin", holdout=0.0, noise_floors=(None,))
    build_dataset([recordings / "flute.wav"], floored, tracker="yin", holdout=0.0, noise_floors=(-50.0,))
    assert read_manifest(floored)["noise_floors_db"] == [-50.0]
    for a, b in zip(iterate_examples(clean, "train", False), iterate_examples(floored, "train", False), strict=True):
        np.testing.assert_array_equal(a["audio"], b["audio"])  # the target: the clean recording
        quiet = a["loudness_db"] < -60
        if quiet.any():  # in its rests the analysis heard the floor (-50 dBFS white noise reads about -27 dB)
            assert np.all(b["loudness_db"][quiet] > -35)
    with np.load(floored / "statistics.npz") as statistics:
        assert float(statistics["scalar/pitch_low"]) < float(statistics["scalar/pitch_high"])


def test_an_interrupted_preparation_goes_on_where_it_stopped(recordings, dataset, tmp_path, monkeypatch):
    import tuibend.training.dataset as module

    def stop_after_the_first(fraction: float) -> None:
        if fraction < 1:
            raise KeyboardInterrupt

    folder = tmp_path / "set"
    with pytest.raises(KeyboardInterrupt):
        build_dataset([recordings], folder, tracker="yin", holdout=0.34, seed=2, noise_floors=(None,),
                      progress=stop_after_the_first)
    assert not (folder / "dataset.json").exists() and len(json.loads((folder / "progress.json").read_text())
                                                           ["recordings"]) == 1
    analysed = []
    original = module.analyze_audio
    monkeypatch.setattr(module, "analyze_audio", lambda audio, tracker: analysed.append(len(audio)) or
                        original(audio, tracker))
    manifest = build_dataset([recordings], folder, tracker="yin", holdout=0.34, seed=2, noise_floors=(None,))
    assert len(analysed) == 2  # the first recording was not analysed again
    assert manifest == {**read_manifest(dataset), "sources": manifest["sources"]}
    for split in ("train", "holdout"):
        for a, b in zip(iterate_examples(folder, split, False), iterate_examples(dataset, split, False), strict=True):
            np.testing.assert_array_equal(a["audio"], b["audio"])
    build_dataset([recordings], folder, tracker="yin", holdout=0.34, seed=2, noise_floors=(None,))
    assert len(analysed) == 2  # all done: nothing analysed, the manifest written again
    build_dataset([recordings], folder, tracker="yin", holdout=0.34, seed=5, noise_floors=(None,))
    assert len(analysed) == 5  # other settings: prepared afresh


def test_a_dataset_in_tensorflows_file_system_trains_read_ahead(recordings, dataset, tmp_path):
    """``ram://`` stands for any scheme TensorFlow's file system reads (gs://, hdfs://): built there, batches
    streamed from there, read ahead on a thread of their own, and cached in memory give the same batches."""
    import tensorflow as tf

    remote = "ram://tuibend-test/set"
    build_dataset([recordings], remote, tracker="yin", holdout=0.34, seed=2, noise_floors=(None,))
    assert tf.io.gfile.exists(remote + "/dataset.json") and not (tmp_path / "ram:").exists()
    cache: dict = {}
    local = batches(dataset, "train", 2, seed=1)
    streamed = read_ahead(batches(remote, "train", 2, seed=1, cache=cache))
    for _ in range(12):  # past one epoch of 4 batches: the second and third come from the cache
        np.testing.assert_array_equal(next(local)["audio"], next(streamed)["audio"])
    assert sorted(cache) == sorted(read_manifest(remote)["shards"]["train"])
    trainer = Trainer(fresh_model(_small(1), "m"), _small(1, jit=False))
    assert np.isfinite(trainer.train_step(next(streamed)))


@pytest.mark.quick
def test_batches_are_read_ahead_on_their_own_thread_which_hands_on_errors_and_stops_when_closed():
    """The step never waits for a read it could have overlapped: the reader runs ``depth`` batches ahead on a
    thread of its own; its error reaches the step that asks next; closing the batches stops the thread."""
    import threading
    import time

    read_on: list[str] = []

    def source(fail_after: int | None = None):
        for index in itertools.count():
            if index == fail_after:
                raise DatasetError("shard 3 is unreadable")
            read_on.append(threading.current_thread().name)
            yield {"audio": np.full(4, index, np.float32)}

    before = set(threading.enumerate())
    ahead = read_ahead(source(), depth=2)
    assert next(ahead)["audio"][0] == 0
    (reader,) = set(threading.enumerate()) - before
    deadline = time.monotonic() + 10
    while len(read_on) < 4 and time.monotonic() < deadline:  # the first, two queued, one waiting for room
        time.sleep(0.01)
    assert read_on == [reader.name] * 4
    assert [next(ahead)["audio"][0] for _ in range(3)] == [1, 2, 3]
    ahead.close()
    reader.join(timeout=10)
    assert not reader.is_alive()

    failing = read_ahead(source(fail_after=3))
    assert [next(failing)["audio"][0] for _ in range(3)] == [0, 1, 2]
    with pytest.raises(DatasetError, match="shard 3 is unreadable"):
        next(failing)


def test_dataset_errors(tmp_path, recordings):
    soundfile.write(tmp_path / "short.wav", np.sin(np.arange(16000) / 5.0), 16000)
    with pytest.raises(AudioFileError, match=r"short\.wav: 1\.0 s is shorter than one 4-second example"):
        build_dataset([tmp_path / "short.wav"], tmp_path / "out", tracker="yin")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no audio files"):
        build_dataset([tmp_path / "empty"], tmp_path / "out", tracker="yin")
    with pytest.raises(AudioFileError, match=r"absent\.wav: no such file"):
        build_dataset([tmp_path / "absent.wav"], tmp_path / "out", tracker="yin")
    with pytest.raises(DatasetError, match="not a dataset"):
        read_manifest(tmp_path)


def _small(steps: int, **overrides) -> TrainingConfig:
    return TrainingConfig(**{"size": "small", "steps": steps, "batch_size": 2, "learning_rate": 1e-3,
                             "checkpoint_every": 4, "eval_every": steps, **overrides})


def test_short_training_run_lowers_the_held_out_loss(dataset, tmp_path):
    data = dataset
    config = _small(24)
    before = Trainer(fresh_model(config, "before"), config).evaluate(data, 2)
    log = train(data, tmp_path / "voice", config)
    assert log.holdout_losses[-1] < 0.9 * before
    assert np.mean(log.losses[-6:]) < np.mean(log.losses[:6])
    summary = json.loads((tmp_path / "voice" / "training.json").read_text())
    assert summary["holdout_loss"] == pytest.approx(log.holdout_losses[-1])
    assert (tmp_path / "voice" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    import tuibend

    model = tuibend.load_model(tmp_path / "voice")
    assert model.statistics.mean_pitch is not None and model.config.source["trainer"] == "tuibend"


def checkpoint_steps(model_folder) -> list[int]:
    """The steps a model folder's training checkpoints were saved at, in order."""
    indexes = (model_folder / "training").glob("ckpt-*.index")
    return sorted(int(path.name.split("-")[1].split(".")[0]) for path in indexes)


RUN = textwrap.dedent("""
    import sys
    from tuibend.training.trainer import TrainingConfig, train
    config = TrainingConfig(size="small", steps=int(sys.argv[3]), batch_size=2, learning_rate=1e-3,
                            checkpoint_every=4, eval_every=1000)
    train(sys.argv[1], sys.argv[2], config, report=lambda step, loss, rate: print(step, flush=True))
""")


def test_training_stopped_by_a_signal_saves_first_and_resumes_exactly(dataset, tmp_path):
    """SIGTERM (a scheduler, `kill`) at step 6 saves a checkpoint there, past the periodic one at step 4; the
    model as it stood loads at once; the same command goes on from step 7 to the weights of a run never
    stopped (which runs beside it). A run killed outright resumes from its periodic checkpoint: the
    two-worker test below kills a worker."""
    import tuibend

    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    stopped = subprocess.Popen([sys.executable, "-c", RUN, str(dataset), str(tmp_path / "stopped"), "12"],
                               stdout=subprocess.PIPE, text=True, env=environment)
    straight = subprocess.Popen([sys.executable, "-c", RUN, str(dataset), str(tmp_path / "straight"), "12"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    for line in stopped.stdout:
        if int(line) >= 6:
            stopped.send_signal(signal.SIGTERM)
            break
    stopped.wait(timeout=120)
    saved = checkpoint_steps(tmp_path / "stopped")
    assert max(saved) >= 6  # saved on the signal: periodic checkpoints alone would stop at step 4
    model = tuibend.load_model(tmp_path / "stopped")  # the model as it stood is usable at once
    assert json.loads((tmp_path / "stopped" / "training.json").read_text())["step"] == max(saved)
    assert model.config.decoder.ch == 256
    resumed = subprocess.run([sys.executable, "-c", RUN, str(dataset), str(tmp_path / "stopped"), "12"],
                             capture_output=True, text=True, env=environment, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    steps = [int(line) for line in resumed.stdout.split()]
    assert steps[0] == max(saved) + 1 and steps[-1] == 12  # restarted after the last checkpoint, not from zero
    _, error = straight.communicate(timeout=600)
    assert straight.returncode == 0, error
    with np.load(tmp_path / "stopped" / "weights.npz") as a, np.load(tmp_path / "straight" / "weights.npz") as b:
        for name in a.files:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-6, err_msg=name)


TWO_REPLICAS = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from pathlib import Path
    from tuibend.training.trainer import Trainer, TrainingConfig, batches, fresh_model
    # Op by op in both runs: XLA cannot run on logical CPU replicas, and its rounding differs.
    config = TrainingConfig(size="small", batch_size=4, learning_rate=1e-3, clip_norm=1e9, jit=False)
    batch = next(batches(Path(sys.argv[1]), "train", 4, 0))
    results = []
    for strategy in (tf.distribute.OneDeviceStrategy("/cpu:0"), tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])):
        with strategy.scope():
            model = fresh_model(config, "m")
        trainer = Trainer(model, config, strategy)
        loss = trainer.train_step(batch)
        results.append((loss, model.weights()))
    assert abs(results[1][0] - results[0][0]) <= 1e-4 * abs(results[0][0])
    start = fresh_model(config, "m").weights()
    one = np.concatenate([(results[0][1][n] - start[n]).ravel() for n in start])
    two = np.concatenate([(results[1][1][n] - start[n]).ravel() for n in start])
    # Adam's first step is about lr * sign(gradient): it shows any difference in the summed gradients. A
    # gradient at rounding level may flip sign with the summation order (on an AMD EPYC 0.01-0.04 % of them,
    # each a full step apart, and where the signs agree the steps differ by 0.2 % there: oneDNN's kernels
    # sum in another order on that CPU; under 1e-4 on an AVX-512 one): the steps must agree in sign almost
    # everywhere and within 1 % where they do.
    agree = np.sign(one) == np.sign(two)
    print(np.linalg.norm((one - two)[agree]) / np.linalg.norm(one[agree]), np.mean(agree))
""")


def test_a_signal_stops_training_at_the_end_of_its_step_and_the_handlers_come_back(dataset, tmp_path):
    """The first SIGINT or SIGTERM only asks: the step in progress ends, a checkpoint is saved there and the run
    stops with KeyboardInterrupt (raised from the handler it could land in TensorFlow's finalizers, where Python
    drops it and the run went on); afterwards the process has its own handlers again."""
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    steps = []

    def report(step: int, loss: float, rate: float) -> None:
        steps.append(step)
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)
            assert steps[-1] == 3  # only asked: nothing raised here, in the middle of the run's own work

    with pytest.raises(KeyboardInterrupt):
        train(dataset, tmp_path / "model", _small(20, checkpoint_every=100), report=report)
    assert steps == [1, 2, 3]
    assert checkpoint_steps(tmp_path / "model") == [3]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_two_replica_step_equals_one_replica_on_the_same_global_batch(dataset, tmp_path):
    data = dataset
    result = subprocess.run([sys.executable, "-c", TWO_REPLICAS, str(data)], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    relative_difference, same_direction = map(float, result.stdout.split()[-2:])
    assert relative_difference < 1e-2
    assert same_direction > 0.999


def test_batches_resume_where_they_stopped(dataset):
    straight = batches(dataset, "train", 2, seed=5)
    expected = [next(straight) for _ in range(9)]
    resumed = next(batches(dataset, "train", 2, seed=5, skip_batches=8))
    np.testing.assert_array_equal(resumed["audio"], expected[8]["audio"])
    assert not np.array_equal(expected[0]["audio"], expected[1]["audio"])


def test_evaluation_measures_pitch_and_loudness_errors(dataset, solo_model_dir, tmp_path):
    from tuibend.pitch.analysis import Features
    from tuibend.training.evaluate import compare

    reference = Features(np.full(100, 220.0, np.float32), np.ones(100, np.float32), np.full(100, -20.0, np.float32))
    sharp = Features(reference.f0_hz * 2 ** (50 / 1200), np.ones(100, np.float32), reference.loudness_db - 6.0)
    cents, decibels = compare(reference, sharp)
    np.testing.assert_allclose(np.median(cents), 50.0, atol=1e-3)
    np.testing.assert_allclose(decibels, -6.0, atol=1e-5)  # signed: rendered against reference
    result = subprocess.run([sys.executable, "-m", "tuibend.cli", "evaluate", str(solo_model_dir), str(dataset),
                             "--tracker", "yin", "--examples", "2", "--spectrogram", str(tmp_path / "e.png")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "pitch error" in result.stdout and "misses the bar" in result.stdout  # a 3-step model is noise
    match = re.search(r"loudness error ([\d.]+) dB .* level ([-+][\d.]+) dB from the input's, its dynamics "
                      r"([\d.]+) dB around that", result.stdout)
    assert match, result.stdout
    error, offset, dynamics = (float(value) for value in match.groups())
    # an offset and the spread around it: |median d| <= median |d| <= median |d - offset| + |offset| (printed to 0.1)
    assert abs(offset) <= error + 0.05 and error <= dynamics + abs(offset) + 0.1
    # the training loss of the same two renders against their inputs (the noise is drawn afresh: within 5 %)
    import tuibend
    from tuibend.dsp.spectral import spectral_loss

    model = tuibend.load_model(solo_model_dir)
    examples = list(itertools.islice(iterate_examples(dataset, "holdout", shuffle=False), 2))
    expected = np.mean([float(spectral_loss(e["audio"][np.newaxis],
                                            np.asarray(model.render(e["f0_hz"], e["loudness_db"]))[np.newaxis]))
                        for e in examples])
    loss = float(re.search(r"loss \(the training loss\) ([\d.]+)", result.stdout).group(1))
    assert loss == pytest.approx(expected, rel=0.05)
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"


def test_calibration_puts_a_model_at_its_inputs_level_and_keeps_the_rest(dataset, solo_model_dir, tmp_path):
    """`tuibend calibrate` measures the level offset over examples from every training recording and writes the
    gain that takes it out into config.json alone (atomically): measured again, the offset is gone."""
    import shutil

    import tuibend
    from tuibend.training.dataset import spread_examples
    from tuibend.training.evaluate import calibrated_config
    from tuibend.training.storage import read_arrays

    # two from every shard (every recording has its own): its first and its last example
    shards = [read_arrays(dataset / name)["audio"] for name in read_manifest(dataset)["shards"]["train"]]
    sample = [example["audio"] for example in spread_examples(dataset, "train", 2 * len(shards))]
    assert len(shards[0]) > 2 and len(sample) == 2 * len(shards)
    assert all(any(np.array_equal(a, shard[0]) for a in sample) and any(np.array_equal(a, shard[-1]) for a in sample)
               for shard in shards)
    model_dir = tmp_path / "solo"
    shutil.copytree(solo_model_dir, model_dir)
    weights = (model_dir / "weights.npz").read_bytes()
    result = subprocess.run([sys.executable, "-m", "tuibend.cli", "calibrate", str(model_dir), str(dataset),
                             "--tracker", "yin", "--examples", "2"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    match = re.search(r"level ([-+][\d.]+) dB from the input's; output gain \+0\.00 -> ([-+][\d.]+) dB",
                      result.stdout)
    assert match, result.stdout
    offset, gain = (float(value) for value in match.groups())
    assert abs(offset) > 0.5 and gain == pytest.approx(-offset, abs=0.01)
    assert json.loads((model_dir / "config.json").read_text())["output_gain_db"] == gain
    assert (model_dir / "weights.npz").read_bytes() == weights
    info = subprocess.run([sys.executable, "-m", "tuibend.cli", "info", str(model_dir)], capture_output=True,
                          text=True, timeout=60)
    assert f"output gain {gain:+.2f} dB" in info.stdout, info.stdout
    again, evaluation = calibrated_config(tuibend.load_model(model_dir), dataset, 2, "yin")
    assert abs(evaluation.loudness_offset_db) < 0.05 and again.output_gain_db == pytest.approx(gain, abs=0.05)


def test_a_model_folder_without_its_checkpoint_goes_on_from_its_exported_weights(dataset, tmp_path):
    """A repository keeps a model's exported weights, not its 3x larger checkpoint: training goes on
    from those weights at their step (the optimizer's moments afresh), not from scratch. Op by op: three runs,
    three compilations saved; XLA's resume is the two-worker test's."""
    import shutil

    import tuibend

    folder = tmp_path / "travelled"
    first = train(dataset, folder, _small(8, jit=False))
    exported = tuibend.load_model(folder).weights()
    for path in (folder / "training").glob("ckpt-*"):
        path.unlink()
    (folder / "training" / "checkpoint").unlink()
    again = train(dataset, folder, _small(10, jit=False))
    assert again.steps[-2:] == [9, 10] and again.steps[:8] == first.steps  # the log goes on, from step 9
    fresh_loss = Trainer(fresh_model(_small(10, jit=False), "fresh"), _small(10, jit=False)).evaluate(dataset, 2)
    assert again.losses[8] < fresh_loss  # it started from the trained weights, not a new model
    assert any(not np.array_equal(exported[k], v) for k, v in tuibend.load_model(folder).weights().items())
    shutil.rmtree(folder / "training")  # no log either: it still starts from the weights, at their step
    assert train(dataset, folder, _small(11, jit=False)).steps == [11]


WORKER = textwrap.dedent("""
    import shutil
    import sys
    from tuibend.training.cluster import make_strategy, placement
    from tuibend.training.trainer import TrainingConfig, train
    strategy = make_strategy()
    data, output = sys.argv[1], sys.argv[2]
    # "1:ops,8:xla": one step op by op, a copy of the chief's folder as it stands, then on to 8 with XLA;
    # a fourth argument: the batch (2 by default)
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    for stop in sys.argv[3].split(","):
        steps, compiled = stop.split(":")
        config = TrainingConfig(size="small", steps=int(steps), batch_size=batch, learning_rate=1e-3,
                                checkpoint_every=4, eval_every=1000, jit=compiled == "xla")
        train(data, output, config, report=lambda step, loss, rate: print(step, flush=True), strategy=strategy)
        if stop != sys.argv[3].split(",")[-1] and placement(strategy).chief:
            shutil.copytree(output, output + "-at-" + steps)
""")


def _free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(("127.0.0.1", 0))
    ports = [each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return ports


def _cluster(arguments: list[str], scratch, each: tuple[list[str], list[str]] = ([], [])) -> list[subprocess.Popen]:
    """Two workers on 127.0.0.1 running the same command (``each``: what one worker's adds), as a scheduler
    starts them (TF_CONFIG set)."""
    hosts = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    workers = []
    for index in range(2):
        (scratch / f"tmp{index}").mkdir(exist_ok=True)
        config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": json.dumps(config),
                       "TMPDIR": str(scratch / f"tmp{index}")}
        workers.append(subprocess.Popen([sys.executable, "-c", WORKER, *arguments, *each[index]],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment))
    return workers


def _finish(workers: list[subprocess.Popen]) -> list[str]:
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-3000:]
        outputs.append(out)
    return outputs


def test_workers_started_with_different_options_stop_at_once_and_say_which(dataset, tmp_path):
    """Workers that disagree on the steps and the batch would wait on each other for ever: every one of them
    stops before the first step, naming the options that differ."""
    workers = _cluster([str(dataset), str(tmp_path / "model")], tmp_path, (["8:ops", "2"], ["6:ops", "4"]))
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 1 and out == "", err[-2000:]
        assert "the workers were started with different training options (--steps, --batch-size)" in err, err[-2000:]
    assert not (tmp_path / "model" / "weights.npz").exists()


def test_two_workers_train_as_one_and_resume_after_a_worker_is_killed(dataset, tmp_path):
    """MultiWorkerMirroredStrategy from TF_CONFIG: the chief alone writes; one step on a global batch of 2
    shared by two workers equals one worker's step on it (op by op in both); a killed worker stops the chief
    with the step to resume from, and the same command on both resumes (the second worker taking the chief's
    state) to the very weights of an uninterrupted run (XLA compiling the gradients)."""
    import tuibend

    data, straight = str(dataset), tmp_path / "model"
    model = tmp_path / "model-at-1"  # the straight run's folder after its first step, copied by its chief
    first = _finish(_cluster([data, str(straight), "1:ops,8:xla"], tmp_path))
    assert first[0].split() == first[1].split() == [str(step) for step in range(1, 9)]
    for folder, step in ((model, 1), (straight, 8)):
        summary = json.loads((folder / "training.json").read_text())
        assert (summary["strategy"], summary["workers"], summary["replicas"], summary["step"]) == \
            ("MultiWorkerMirroredStrategy", 2, 2, step)
    assert not any((tmp_path / "tmp1").iterdir())  # worker 1's own checkpoints went with its temporary folder
    config = TrainingConfig(size="small", batch_size=2, learning_rate=1e-3, jit=False)
    single = Trainer(fresh_model(config, "m"), config)
    start = single.model.weights()
    single.train_step(next(batches(dataset, "train", 2, 0)))
    one = np.concatenate([(single.model.weights()[n] - start[n]).ravel() for n in start])
    shared = tuibend.load_model(model).weights()
    two = np.concatenate([(shared[n] - start[n]).ravel() for n in start])
    agree = np.sign(one) == np.sign(two)  # Adam's first step: about lr * sign(gradient) (see the test above)
    assert np.mean(agree) > 0.999
    assert np.linalg.norm((one - two)[agree]) / np.linalg.norm(one[agree]) < 1e-2

    chief, worker = _cluster([data, str(model), "8:xla"], tmp_path)
    for line in worker.stdout:
        if int(line) >= 6:  # past the checkpoint at step 4
            worker.kill()
            break
    worker.wait(timeout=60)
    _, error = chief.communicate(timeout=120)  # the chief notices the lost worker and stops
    assert chief.returncode == 1
    assert "worker 0 of 2: the cluster lost a worker" in error and "to resume from step 4" in error
    resumed = _finish(_cluster([data, str(model), "8:xla"], tmp_path))
    assert resumed[0].split() == resumed[1].split() == [str(step) for step in range(5, 9)]
    with np.load(model / "weights.npz") as a, np.load(straight / "weights.npz") as b:
        for name in a.files:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.quick
@pytest.mark.parametrize(("value", "message"), [
    ("{not json", "TF_CONFIG is not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "TF_CONFIG must name a cluster"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     r"task .* is not one of its cluster's tasks \(worker 0-1\)"),
])
def test_a_bad_tf_config_is_named(monkeypatch, value, message):
    from tuibend.training.cluster import ClusterError, cluster_config

    monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(ClusterError, match=message):
        cluster_config()
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, '
                                    '"task": {"type": "worker", "index": 0}}')
    assert cluster_config()["task"]["index"] == 0
    monkeypatch.delenv("TF_CONFIG")
    assert cluster_config() is None


def test_mixed_precision_trains_in_bfloat16_products_with_float32_weights(dataset):
    batch = next(batches(dataset, "train", 2, 0))
    results = {}
    for precision in ("float32", "mixed"):
        config = _small(1, jit=False, precision=precision)
        trainer = Trainer(fresh_model(config, "m"), config)
        start = trainer.model.weights()
        loss = trainer.train_step(batch)
        after = trainer.model.weights()
        assert all(value.dtype == np.float32 for value in after.values())
        results[precision] = loss, np.concatenate([(after[n] - start[n]).ravel() for n in start])
    (loss32, step32), (loss16, step16) = results["float32"], results["mixed"]
    assert loss16 != loss32 and abs(loss16 - loss32) < 0.01 * loss32  # bfloat16 products: 3 significant digits
    assert np.mean(np.sign(step16) == np.sign(step32)) > 0.95
    with pytest.raises(InputError, match="unknown precision 'half'"):
        TrainingConfig(precision="half")


def test_unseen_melodies_are_none_of_the_training_files(tmp_path):
    """Evaluation melodies (tools/make_training_audio.py unseen) come from seeds no training file uses."""
    sys.path.insert(0, str(REPO / "tools"))
    import make_training_audio as training_audio

    training = {path.read_bytes() for path in (REPO / "data" / "midi" / "flute").glob("*.mid")}
    assert len(training) >= 20
    unseen = training_audio.unseen_midi(tmp_path, "flute", 3, 40.0)
    contents = [path.read_bytes() for path in unseen]
    assert len(set(contents)) == 3 and not set(contents) & training
    assert [path.read_bytes() for path in training_audio.unseen_midi(tmp_path / "again", "flute", 3, 40.0)] == contents
