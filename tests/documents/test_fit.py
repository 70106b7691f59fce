"""doc-rotation's whole recipe at toy scale (`stn fit doc-rotation`): a made-up real page bank with
its split, a few synthetic pages, a few steps, calibration, a plain-data checkpoint, the export,
and a second run that reuses the cache. Seconds, not hours; it only has to keep the recipe from
rotting."""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from stn_align.service.cli import main
from stn_align.training.documents.fit_config import load_fit_config

RECIPE = str(Path(__file__).resolve().parents[2] / "configs" / "doc-rotation.toml")


def test_the_recipe_runs_end_to_end_and_reuses_its_cache(tmp_path, capsys, fake_bank):
    pages, split = fake_bank
    out = tmp_path / "run"
    settings = [
        f"data.pages={pages}",
        f"data.split_file={split}",
        f"data.bank={tmp_path / 'bank'}",
        "data.bank_count=3",
        "data.examples=12",
        "data.shard_size=6",
        "data.val_rotations=2",
        "input_size=256",
        "train.steps=3",
        "train.batch_size=4",
        "train.eval_every=2",
        "train.warmup_steps=1",
    ]
    args = ["fit", "doc-rotation", "--config", RECIPE, "--out-dir", str(out)]
    for setting in settings:
        args += ["--set", setting]
    onnx_path = tmp_path / "exported" / "doc-rotation.onnx"
    assert main([*args, "--export", str(onnx_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["step"] in (2, 3) and report["temperature"] > 0
    assert len(list((out / "cache" / "train").glob("shard-*.npz"))) == 2
    assert (out / "cache" / "val-r2-s0.npz").is_file()  # 2 val pages, 2 turns each

    # The checkpoint is plain data; `stn export` rebuilds the same model from it.
    state = torch.load(out / "ckpt.pt", weights_only=True)
    assert (
        state["fit_config"]["input_size"] == 256 and state["model_config"]["family"] == "rotation"
    )
    assert float(state["model"]["localiser.temperature"]) == pytest.approx(report["temperature"])
    assert state["versions"]["numpy"] == np.__version__ and state["versions"]["opencv"]
    again = tmp_path / "again" / "doc-rotation.onnx"
    assert main(["export", str(out / "ckpt.pt"), "-o", str(again), "--name", "doc-rotation"]) == 0
    capsys.readouterr()
    page = np.full((1, 256, 256, 1), 240, np.uint8)
    page[0, 60:200:12, 40:220] = 20  # a few lines of "text"
    answers = []
    for path in (onnx_path, again):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        answers.append(session.run(["theta", "confidence"], {"image": page}))
    assert np.allclose(answers[0][0], answers[1][0], atol=1e-5)
    assert np.allclose(answers[0][1], answers[1][1], atol=1e-5)

    # A second run renders nothing again: its shards are the first run's.
    stamps = {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("*.npz")}
    assert main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("*.npz")} == stamps


def test_recipe_settings_are_checked_by_name(tmp_path):
    from stn_align.training.config import ConfigError

    cfg = load_fit_config(RECIPE)
    assert cfg.data.val_rotations == 8 and cfg.input_size == 768
    with pytest.raises(ConfigError, match="data.examples"):
        load_fit_config(None, ["data.examples=0"])
    with pytest.raises(ConfigError, match="train.stepz"):
        load_fit_config(None, ["train.stepz=3"])
    assert main(["fit", "doc-rotation", "--config", RECIPE, "--set", "data.real_share=2"]) == 2


def test_the_cache_is_the_same_from_one_process_or_two(tmp_path, fake_bank):
    from stn_align.training.documents.fit import build
    from stn_align.training.documents.orientation_cache import build_train_cache
    from stn_align.training.documents.orientation_data import read_shard

    pages, split = fake_bank
    made = {}
    for workers in (1, 2):
        cfg = load_fit_config(
            RECIPE,
            [f"data.pages={pages}", f"data.split_file={split}", f"data.bank={tmp_path / 'bank'}",
             "data.bank_count=3", "data.examples=9", "data.shard_size=3", "input_size=256",
             f"data.cache={tmp_path / f'cache-{workers}'}", f"workers={workers}"],
        )  # fmt: skip
        made[workers] = build_train_cache(cfg, build(cfg)[1])
    assert [p.name for p in made[1]] == [p.name for p in made[2]] and len(made[1]) == 3
    for one, two in zip(made[1], made[2], strict=True):
        a, b = read_shard(one), read_shard(two)
        assert a.keys() == b.keys()
        assert all(np.array_equal(a[k], b[k]) for k in a)
