"""doc-perspective's recipe at toy scale (configs/doc-perspective.toml with a few photos and
steps): photos rendered into a cache, a few training steps, export with the confidence output, and
the service answering with corner_confidence and, below min_corner_confidence, the identity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import stn_align.training.documents  # noqa: F401  (registers the doc-photo localiser)
from stn_align.training.config import load_config
from stn_align.training.export import export_model, read_contract
from stn_align.training.train import load_checkpoint, train

ROOT = Path(__file__).resolve().parents[2]


def test_toy_run_of_the_recipe_trains_exports_and_serves(tmp_path, shared_data, capsys):
    cfg = load_config(
        ROOT / "configs" / "doc-perspective.toml",
        [
            "model.localiser=doc-photo",
            "model.family=projective",
            "data.recipe=phone",
            "steps=2",
            "batch_size=4",
            "eval_every=2",
            "warmup_steps=1",
            "num_workers=0",
            "model.input_size=64",
            "model.coarse_size=32",
            "model.hidden=16",
            "data.train_size=6",
            "data.val_size=4",
            f"data.path={tmp_path / 'photos'}",
            f"out_dir={tmp_path / 'run'}",
        ],
    )
    metrics = train(cfg)
    assert np.isfinite(metrics["val_loss"]) and "val_error_pct" in metrics
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["step"] == 2
    model, state = load_checkpoint(tmp_path / "run" / "ckpt.pt")
    assert state["model_config"]["localiser"] == "doc-photo"

    out = tmp_path / "models" / "doc-perspective.onnx"
    report = export_model(model, out, input_channels=3)
    assert read_contract(out).outputs == ("theta", "confidence")
    assert "Sigmoid" not in report["ops"]

    from stn_align.service.config import ServiceConfig
    from stn_align.service.pipeline import AlignOptions, Pipeline

    photo = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    options = AlignOptions(models=["doc-perspective"], encoding="none")
    for threshold in (0.0, 1.0):
        config = ServiceConfig(device="cpu", page_edges="none", min_corner_confidence=threshold)
        pipe = Pipeline.from_dir(str(out.parent), config)
        try:
            result = pipe.align(photo, options)
        finally:
            pipe.close()
        assert 0.0 <= result.corner_confidence <= 1.0
        assert result.stages[0].corner_confidence == result.corner_confidence
        if threshold == 1.0:  # nothing is that sure: the identity, the whole photo
            np.testing.assert_array_equal(result.stages[0].theta, np.zeros(8))

    # The stage diagnostic reads the same checkpoint and validation cache.
    from bench import photo_stages

    sheet = tmp_path / "worst.png"
    args = [str(tmp_path / "run" / "ckpt.pt"), "--photos", str(tmp_path / "photos")]
    assert photo_stages.main([*args, "--sheet", str(sheet)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0] for r in rows[1:]] == [
        "| stage one", "| stage two", "| corner patches, step 1", "| corner patches, step 2",
        "| final (photo order)",
    ]  # fmt: skip
    assert sheet.stat().st_size > 0
