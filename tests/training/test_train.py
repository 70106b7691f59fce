"""The training loop: supervised recovery, end-to-end learning, checkpoints and resume."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import DataLoader

from stn_align.training.config import load_config
from stn_align.training.data import build_dataset
from stn_align.training.train import evaluate, load_checkpoint, param_groups, point_loss, train


def test_supervised_run_recovers_random_affine_transforms(tmp_path):
    """300 steps on 32 px shapes. Bound: the held-out point error is under 0.1 normalised units
    (5% of the image's half-width) and under 40% of the error of always answering identity."""
    torch.manual_seed(0)
    cfg = load_config(
        None,
        [
            "model.family=affine",
            "model.input_size=32",
            "steps=300",
            "batch_size=32",
            "lr=3e-3",
            "eval_every=300",
            "data.max_rotation=30",
            "data.val_size=256",
            f"out_dir={tmp_path}",
        ],
    )
    metrics = train(cfg)
    model, _ = load_checkpoint(tmp_path / "ckpt.pt")
    batch = next(iter(DataLoader(build_dataset(cfg, "val"), batch_size=256)))
    identity = model.family.identity()[None].repeat(256, 1)
    baseline = point_loss(model.family, identity, batch["params"], 32).sqrt().item()
    assert metrics["val_point_rmse"] < 0.1
    assert metrics["val_point_rmse"] < 0.4 * baseline
    # The checkpoint alone reproduces the metric measured during training.
    reloaded = evaluate(
        model, DataLoader(build_dataset(cfg, "val"), batch_size=cfg.batch_size), cfg, "cpu"
    )
    assert reloaded["point_rmse"] == pytest.approx(metrics["val_point_rmse"], rel=1e-4)


def test_end_to_end_learns_cluttered_mnist_from_labels_alone(tmp_path, shared_data):
    cfg = load_config(
        None,
        [
            "mode=end_to_end",
            "model.family=affine",
            "model.localiser=fc",
            "model.classifier=cnn",
            "model.input_size=40",
            "data.dataset=cluttered-mnist",
            f"data.path={shared_data / 'cluttered-mnist' / 'mnist_cluttered_40x40.npz'}",
            "steps=150",
            "batch_size=64",
            "lr=1e-3",
            "localiser_lr=1e-4",
            "eval_every=150",
            f"out_dir={tmp_path}",
        ],
    )
    metrics = train(cfg)
    assert metrics["val_error"] < 0.75  # chance is 0.9
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["step"] == 150 and "val_error" in record


def test_localiser_gets_its_own_learning_rate():
    cfg = load_config(
        None,
        [
            "mode=end_to_end",
            "model.classifier=cnn",
            "model.localiser=fc",
            "model.input_size=16",
            "lr=1e-3",
            "localiser_lr=1e-5",
        ],
    )
    from stn_align.training.build import build_model

    model = build_model(cfg.model)
    groups = param_groups(model, cfg)
    assert [g["lr"] for g in groups] == [1e-5, 1e-3]
    localiser_params = {id(p) for p in model.transformers[0].localiser.parameters()}
    assert {id(p) for p in groups[0]["params"]} == localiser_params


def test_checkpoint_rebuilds_the_model_and_resume_continues(tmp_path):
    args = [
        "model.family=rotation",
        "model.input_size=16",
        "model.localiser=fc",
        "batch_size=8",
        "eval_every=5",
        "data.val_size=16",
        f"out_dir={tmp_path}",
    ]
    train(load_config(None, [*args, "steps=5"]))
    model, state = load_checkpoint(tmp_path / "ckpt.pt")
    assert state["step"] == 5 and state["model_config"]["family"] == "rotation"
    assert model.predict_params(torch.zeros(1, 1, 16, 16)).shape == (1, 2)
    train(load_config(None, [*args, "steps=10", "resume=true"]))
    _, state = load_checkpoint(tmp_path / "ckpt.pt")
    assert state["step"] == 10
    steps = [
        json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [5, 10]


def test_missing_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an stn checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_localiser_init_identity_or_random():
    from stn_align.training.build import build_model

    cfg = load_config(None, ["model.localiser=fc", "model.input_size=16"]).model
    head = list(build_model(cfg).localiser.modules())[-1]
    assert not head.weight.any()
    cfg.localiser_init = "random"
    head = list(build_model(cfg).localiser.modules())[-1]
    assert head.weight.abs().sum() > 0


def tiny_rotation_run(tmp_path, steps: int, *overrides: str):
    """A few steps of a tiny rotation localiser, evaluated and saved once at the end."""
    return load_config(
        None,
        [
            "model.family=rotation",
            "model.input_size=16",
            "model.localiser=fc",
            "batch_size=8",
            f"steps={steps}",
            f"eval_every={steps}",
            "num_workers=0",
            "data.val_size=16",
            f"out_dir={tmp_path}",
            *overrides,
        ],
    )


def test_a_non_finite_batch_is_skipped_not_learned(tmp_path, monkeypatch):
    """The first batch's targets are NaN: its step is skipped and counted; the weights stay
    finite."""
    from stn_align.training import data

    def poisoned(cfg, split):
        clean = data.DATASETS["shapes"](cfg, split)
        calls = {"n": 0}

        class Poisoned(torch.utils.data.Dataset):
            def __len__(self):
                return len(clean)

            def __getitem__(self, i):
                item = dict(clean[i])
                calls["n"] += 1
                if split == "train" and calls["n"] <= 8:
                    item["params"] = torch.full_like(item["params"], float("nan"))
                return item

        return Poisoned()

    monkeypatch.setitem(data.DATASETS, "poisoned", poisoned)
    metrics = train(tiny_rotation_run(tmp_path, 4, "data.dataset=poisoned"))
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["skipped_steps"] == 1 and record["step"] == 4
    model, _ = load_checkpoint(tmp_path / "ckpt.pt")
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.isfinite(torch.tensor(metrics["val_loss"]))


def test_a_finite_loss_with_a_non_finite_gradient_is_skipped(tmp_path, monkeypatch):
    """sqrt at zero has an infinite slope: the first step's loss is finite but its gradient is
    not. Clipping that gradient would write NaN into every weight; the step is skipped instead."""
    from stn_align.training import train as train_module

    real = train_module.compute_loss
    calls = {"n": 0}

    def steep(model, batch, cfg, device):
        loss, stats = real(model, batch, cfg, device)
        calls["n"] += 1
        if calls["n"] == 1:
            total = sum(p.sum() for p in model.parameters())
            loss = loss + torch.sqrt(total * 0.0)
        return loss, stats

    monkeypatch.setattr(train_module, "compute_loss", steep)
    train(tiny_rotation_run(tmp_path, 3))
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["skipped_steps"] == 1 and record["step"] == 3
    model, _ = load_checkpoint(tmp_path / "ckpt.pt")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_corner_loss_is_the_mean_squared_corner_distance_and_stays_finite():
    from stn_align.core.geometry import CORNERS
    from stn_align.training.families import build_family
    from stn_align.training.train import corner_loss

    target = torch.zeros(2, 8)
    shifted = target.clone()
    shifted[0, 0], shifted[1, 7] = 0.2, -0.4  # one corner of each moved by 0.2 and 0.4
    assert corner_loss(shifted, target).item() == pytest.approx((0.04 + 0.16) / 8)
    # All four corners on one point: the point loss divides by zero, the corner loss does not.
    collapsed = (-torch.from_numpy(CORNERS).float()).reshape(1, 8)
    family = build_family("projective")
    assert not torch.isfinite(point_loss(family, collapsed, target[:1], 16))
    assert corner_loss(collapsed, target[:1]).item() == pytest.approx(2.0)
