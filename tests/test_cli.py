"""The ``tuibend`` command as a user runs it: a subprocess, its output and exit status."""

from __future__ import annotations

import subprocess
import sys

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
        # refused before the analysis and the render (it used to do all the work first)
        (("render", str(tmp_path / "in.wav"), "-o", str(tmp_path / "in.wav" / "out.wav"), "--model",
          str(solo_model_dir), "--no-cache"), f"{tmp_path / 'in.wav'} is not a folder"),
        (("render", str(tmp_path / "in.wav"), "-o", str(tmp_path), "--model", str(solo_model_dir)),
         "is a folder, not a file to write"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr


def test_units_command_computes_and_caches_statistics(solo_model_dir, tmp_path):
    import shutil

    folder = shutil.copytree(solo_model_dir, tmp_path / "model")
    (folder / "units.npz").unlink(missing_ok=True)
    result = run("units", str(folder))
    assert result.returncode == 0, result.stderr
    assert "fc2" in result.stdout and "strongest |r|" in result.stdout
    assert (folder / "units.npz").exists()
