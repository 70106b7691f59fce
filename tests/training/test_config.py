"""Config loading: TOML, YAML, overrides, and errors that name the key."""

from __future__ import annotations

import pytest

from stn_align.training.config import ConfigError, load_config


def test_toml_yaml_and_overrides(tmp_path):
    (tmp_path / "a.toml").write_text('steps = 7\n[model]\nfamily = "tps"\ntps_grid = 3\n')
    (tmp_path / "a.yaml").write_text("steps: 7\nmodel:\n  family: tps\n  tps_grid: 3\n")
    for name in ("a.toml", "a.yaml"):
        cfg = load_config(tmp_path / name, ["lr=0.01", "model.input_size=48", "resume=true"])
        assert (cfg.steps, cfg.model.family, cfg.model.tps_grid) == (7, "tps", 3)
        assert (cfg.lr, cfg.model.input_size, cfg.resume) == (0.01, 48, True)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.famly=affine"], "model.famly: unknown key"),
        (["steps=many"], "steps: expected int"),
        (["model.family=shear"], "model.family: must be"),
        (["mode=e2e"], "mode: must be one of"),
        (["model.channels=2"], "model.channels: must be 1 or 3"),
        (["model.coarse_context=-1"], "model.coarse_context: must be 0 or more"),
        (["model.page_mask=-0.5"], "model.page_mask: must be 0 or more"),
        (["data.randomise=1.5"], "data.randomise: must be a share in"),
        (["mode=end_to_end"], "model.classifier: end_to_end mode needs a classifier"),
        (["resume=maybe"], "resume: expected true or false"),
        (["model=3"], "model: expected a table"),
        (["steps"], "expected KEY=VALUE"),
    ],
)
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("steps = = 3")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(tmp_path / "bad.toml")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ConfigError, match="must end in .toml"):
        load_config(tmp_path / "x.json")
    (tmp_path / "t.toml").write_text("steps = 1.5\n")
    with pytest.raises(ConfigError, match="steps: expected int, got float"):
        load_config(tmp_path / "t.toml")
