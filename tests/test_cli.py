"""The ``tuibend`` command as a user runs it: a subprocess, its output and exit status."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import DEMO_INPUT

import tuibend


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tuibend.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def test_import_ddsp_command_writes_a_model_that_loads(ddsp_checkpoint, tmp_path):
    result = run("import-ddsp", str(ddsp_checkpoint), "-o", str(tmp_path / "violin"), "--name", "violin")
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout
    assert result.stderr == ""  # TensorFlow's start-up chatter stays off the terminal
    model = tuibend.load_model(tmp_path / "violin")
    assert model.config.name == "violin"
    info = run("info", str(tmp_path / "violin"))
    assert info.returncode == 0
    assert "4.80 M decoder parameters" in info.stdout and "fc2" in info.stdout


def test_errors_are_one_line_without_traceback(ddsp_checkpoint, tmp_path):
    for args in (("import-ddsp", str(tmp_path / "nothing"), "-o", str(tmp_path / "out")),
                 ("info", str(tmp_path / "nothing")),
                 ("info", str(ddsp_checkpoint))):
        result = run(*args)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tuibend: error: ")
        assert "Traceback" not in result.stderr


def test_bad_arguments_and_unwritable_outputs_are_one_line(solo_model_dir, tmp_path):
    import numpy as np
    import soundfile

    soundfile.write(tmp_path / "in.wav", np.sin(np.arange(16000) / 8.0) * 0.3, 16000)
    soundfile.write(tmp_path / "tiny.wav", np.ones(40) * 0.1, 16000)
    cases = [
        (("analyze", str(tmp_path / "in.wav"), "--crepe-hop", "0"), "must be at least 1"),
        (("analyze", str(tmp_path / "tiny.wav"), "--no-cache"), "too short to analyse"),
        (("render", str(tmp_path / "in.wav"), "-o", str(tmp_path / "out.xyz"), "--model", str(solo_model_dir)),
         "cannot write .xyz files"),
        (("models", str(tmp_path / "absent")), "absent: no such folder"),
        (("scenes", str(tmp_path / "absent")), "absent: no such scenes folder"),
        # refused before the analysis and the render, not after all the work
        (("render", str(tmp_path / "in.wav"), "-o", str(tmp_path / "in.wav" / "out.wav"), "--model",
          str(solo_model_dir), "--no-cache"), f"{tmp_path / 'in.wav'} is not a folder"),
        (("render", str(tmp_path / "in.wav"), "-o", str(tmp_path), "--model", str(solo_model_dir)),
         "is a folder, not a file to write"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr


def test_units_are_computed_in_a_child_process_cached_and_listed(solo_model_dir, tmp_path):
    """A process without TensorFlow (the native kernel playing, a live edit asking for an informed selection)
    gets a model's unit statistics from `tuibend units` run as a child, never loading TensorFlow itself;
    the command then lists them from the cache."""
    import shutil

    import numpy as np

    folder = shutil.copytree(solo_model_dir, tmp_path / "model")
    (folder / "units.npz").unlink(missing_ok=True)
    probe = ("import sys, numpy as np; from tuibend.cli import model_unit_statistics; "
             "from tuibend.model.store import read_model; "
             "statistics = model_unit_statistics(read_model(sys.argv[1]), sys.argv[1]); "
             "np.savez(sys.argv[2], **statistics); print('tensorflow' in sys.modules)")
    given = subprocess.run([sys.executable, "-c", probe, str(folder), str(tmp_path / "given.npz")],
                           capture_output=True, text=True, timeout=300)
    assert given.returncode == 0, given.stderr
    assert given.stdout.strip() == "False"  # computed by the child: TensorFlow never loaded here
    with np.load(folder / "units.npz") as cached, np.load(tmp_path / "given.npz") as returned:
        assert sorted(cached.files) == sorted(returned.files)
        assert {"fc1/variance", "gru/clusters/8", "fc2/correlation/centroid"} <= set(cached.files)
        for name in cached.files:
            np.testing.assert_array_equal(cached[name], returned[name], err_msg=name)
    result = run("units", str(folder))
    assert result.returncode == 0, result.stderr
    assert "fc2" in result.stdout and "strongest |r|" in result.stdout


@pytest.mark.quick
def test_version_and_the_listing_commands_need_no_tensorflow(tmp_path):
    """``--version``, ``models``, ``scenes``, ``paths``, ``info`` and ``analyze`` (the kernel's CREPE) answer without
    importing TensorFlow (start-up time is measured by bench/startup.py), from any folder."""
    probe = ("import sys; from tuibend.cli import main; code = main(sys.argv[1:]); "
             "print('tensorflow imported' if 'tensorflow' in sys.modules else 'no tensorflow'); sys.exit(code)")
    for args, expected in ((("models",), "choir"), (("scenes",), "breath"), (("paths",), "takes"),
                           (("info", "choir"), "gru            512 units"),
                           (("analyze", str(DEMO_INPUT), "--no-cache"), "voiced, median f0")):
        result = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=tmp_path,
                                timeout=60)
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout and "no tensorflow" in result.stdout, result.stdout
    version = run("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"tuibend {tuibend.__version__}"


# A render through the native kernel: reading a model, the kernel, the bends' plans and control, the gate, a
# cached analysis.
NATIVE_PATH = ("tuibend.model.store", "tuibend.native.stream", "tuibend.bend.rig", "tuibend.bend.derive",
               "tuibend.bend.scene", "tuibend.bend.units", "tuibend.dsp.plain", "tuibend.pitch.files",
               "tuibend.pitch.analysis", "tuibend.adjust", "tuibend.dynamics", "tuibend.render")


def test_the_native_kernels_path_imports_no_tensorflow():
    """TensorFlow loads where a graph is built or run, not with the modules a render through the kernel uses."""
    probe = (f"import importlib, sys; [importlib.import_module(name) for name in {NATIVE_PATH!r}]; "
             "print(sorted(name for name in sys.modules if name.split('.')[0] in ('tensorflow', 'keras')))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_models_and_scenes_are_found_by_name_the_users_first(solo_model_dir, tmp_path):
    """A bundled model or scene plays by name from any folder; one the user keeps under the same name
    shadows it; a name that is nowhere is one line naming what there is."""
    import os
    import shutil

    from tuibend.places import find_model, find_scene, is_bundled, user_models, user_scenes

    assert is_bundled(find_model("choir")) and is_bundled(find_scene("breath"))
    mine = shutil.copytree(solo_model_dir, user_models() / "choir")
    user_scenes().mkdir(parents=True, exist_ok=True)
    shutil.copy(find_scene("stutter"), user_scenes() / "breath.toml")
    try:
        assert find_model("choir") == mine and find_scene("breath") == user_scenes() / "breath.toml"
        listing = run("models", cwd=tmp_path)
        assert "choir" in listing.stdout and str(mine) in listing.stdout and "flute" in listing.stdout
    finally:
        shutil.rmtree(mine)
        os.unlink(user_scenes() / "breath.toml")
    absent = run("info", "no-such-model", cwd=tmp_path)
    assert absent.returncode == 2 and absent.stderr.strip().splitlines() == [
        "tuibend: error: no-such-model: no such model folder or model name (models: choir, flute)"]
    missing_scenes = run("play", "--headless", "--device", "none", "--scenes", str(tmp_path / "absent"), cwd=tmp_path)
    assert missing_scenes.returncode == 2 and "absent: no such scenes folder" in missing_scenes.stderr
    unknown_scene = run("render", "in.wav", "-o", "out.wav", "--scene", "nothing-like-it", cwd=tmp_path)
    assert unknown_scene.returncode == 2 and "nothing-like-it: no such scene file or scene name" in unknown_scene.stderr


@pytest.mark.quick
def test_a_bundled_models_unit_statistics_are_cached_outside_the_package(tmp_path):
    from tuibend.bend.units import units_path
    from tuibend.places import bundled, is_bundled, user_cache

    path = units_path(bundled("models", "choir"))
    assert not is_bundled(path) and path.is_relative_to(user_cache())
    assert units_path(tmp_path) == tmp_path / "units.npz"


@pytest.mark.quick
def test_check_validates_scenes_against_a_model_without_loading_it(tmp_path):
    """``tuibend check`` before a gig: the engine's own validation against the model's configuration, each
    fault naming the file, the field and what is allowed; no TensorFlow imported."""
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[[bend]]\npoint = "fc9"\ntransform = "scale"\n')
    probe = ("import sys; from tuibend.cli import main; code = main(sys.argv[1:]); "
             "print('tensorflow imported' if 'tensorflow' in sys.modules else 'no tensorflow'); sys.exit(code)")
    good = subprocess.run([sys.executable, "-c", probe, "check", "breath", "far-chain", "--model", "flute"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert good.returncode == 0, good.stderr
    assert good.stdout.count(": ok for flute") == 2 and "no tensorflow" in good.stdout
    result = run("check", "breath", str(bad), "nowhere", cwd=tmp_path)
    assert result.returncode == 2
    assert "breath.toml: ok for choir" in result.stdout
    assert f"{bad}: bend[1].point: 'fc9' is not a bend point of this model (points: " in result.stdout
    assert "nowhere: no such scene file or scene name" in result.stdout
    assert result.stderr.strip() == "tuibend: error: 2 of 3 scenes cannot be played on choir"



@pytest.mark.quick
def test_a_bug_keeps_its_traceback_in_a_log_and_prints_one_line(tmp_path):
    """Anything that is not a TuibendError is a bug: one line names it and the file its traceback went to."""
    import os

    probe = "import sys, tuibend.cli as cli; cli._paths = lambda args: {}['missing']; sys.exit(cli.main(['paths']))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "XDG_STATE_HOME": str(tmp_path)})
    assert result.returncode == 70
    line, = result.stderr.strip().splitlines()
    assert line.startswith("tuibend: internal error: KeyError: 'missing' (a bug: traceback in ")
    log = next((tmp_path / "tuibend" / "log").glob("crash-*.txt"))
    assert str(log) in line and "Traceback" in log.read_text() and "KeyError" in log.read_text()
