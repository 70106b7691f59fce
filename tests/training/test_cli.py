"""`stn train` and `stn export` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from stn_align.service.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "--set",
    "model.family=rotation",
    "--set",
    "model.input_size=16",
    "--set",
    "model.localiser=fc",
    "--set",
    "batch_size=8",
    "--set",
    "eval_every=5",
    "--set",
    "data.val_size=16",
    "--set",
    "data.train_size=64",
]


def test_train_then_export(tmp_path, capsys):
    assert main(["train", *TINY, "--steps", "5", "--out-dir", str(tmp_path / "run")]) == 0
    capsys.readouterr()  # keep only export's output
    out = tmp_path / "exported" / "tiny.onnx"
    assert (
        main(["export", str(tmp_path / "run" / "ckpt.pt"), "-o", str(out), "--input-channels", "3"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["localiser"] == str(out) and report["warper_max_grey_diff"] <= 1
    assert out.is_file() and out.with_name("tiny.warp.onnx").is_file()


def test_bad_config_names_the_key(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("[model]\nfamly = 'affine'\n")
    assert main(["train", "--config", str(config), "--out-dir", str(tmp_path)]) == 2
    assert "model.famly: unknown key" in capsys.readouterr().err


def test_export_of_a_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["export", str(tmp_path / "none.pt"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "not found" in capsys.readouterr().err


def test_help_needs_no_torch():
    """`stn --help` and the command table load without importing torch or onnxruntime."""
    code = (
        "import sys; from stn_align.service.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_torchrun_data_parallel_smoke(tmp_path):
    """Two CPU processes (gloo) train together and rank 0 writes the checkpoint."""
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "stn_align.service.cli",
        "train",
        *TINY,
        "--steps",
        "6",
        "--out-dir",
        str(tmp_path),
    ]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [5, 6]
