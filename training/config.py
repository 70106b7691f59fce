"""Training configuration: dataclasses, loaded from TOML or YAML, with `key=value` overrides.

Every key is checked at load time: an unknown key or a value of the wrong type is an error that
names the key, e.g. `model.famly: unknown key (expected one of: family, localiser, ...)`.
The model part is saved inside each checkpoint so that `stn export` can rebuild the model.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from stn_align.core import contract, geometry


class ConfigError(ValueError):
    pass


@dataclass
class ModelConfig:
    family: str = "affine"  # a stn_align.core.geometry family, or "none" (a classifier alone)
    localiser: str = "conv"  # a key of stn_align.training.build.LOCALISERS
    input_size: int = 64  # side of the localiser's square input
    channels: int = 1  # 1 (grey) or 3 (RGB) channels seen by the model
    hidden: int = 64  # width of the localiser's fully connected layers
    tps_grid: int = 4  # n for the n x n thin-plate-spline control points
    coarse_size: int = 64  # doc-photo: side of the copy of the whole photo its first stage sees
    coarse_context: int = 0  # doc-photo: residual dilated conv blocks over stage one's last map
    page_mask: float = 0.0  # doc-photo: weight of stage one's page-mask loss (0: no mask head)
    mean: float = 0.5  # input normalisation, applied to pixel / 255
    std: float = 0.5
    letterbox_fill: int = 0  # pad value when the localiser input is letterboxed
    # "identity": the last layer starts at zero weights and the identity bias (the paper's advice);
    # "random": PyTorch's default init there, for the initialisation ablation.
    localiser_init: str = "identity"
    # End-to-end mode: a classifier after the transformer.
    classifier: str = "none"  # "none", or a key of stn_align.training.build.CLASSIFIERS
    num_classes: int = 10
    output_size: int = 0  # side of the transformer's output; 0 means input_size
    transformers: int = 1  # 2 puts two transformers in parallel (2xST-CNN)
    # What export writes into the model contract (stn_align.core.contract):
    chain_role: str = ""  # "first" (sees the raw photo), "any", "last"; "": the family's own
    postprocess: str = ""  # comma-separated service steps, e.g. "page_edges" for doc-perspective

    @property
    def postprocess_steps(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.postprocess.split(",") if s.strip())


@dataclass
class DataConfig:
    dataset: str = "shapes"  # a key of stn_align.training.data.DATASETS
    path: str = ""  # file or folder, for datasets read from disk
    # documents, projective: "synthetic" (bank pages on drawn backgrounds) or "phone" (real pages
    # photographed on desks, rendered once into data.path; see training/documents/photos.py)
    recipe: str = "synthetic"
    # phone: the share of training photos on a randomised desk, and of their cast shadows drawn
    # as several at once (training/documents/photos.py); 0 keeps the drawn kinds only
    randomise: float = 0.0
    train_size: int = 20000  # items per epoch for generated datasets
    val_size: int = 512
    # Distortions drawn for synthetic supervised data (per family, see stn_align.training.data).
    max_rotation: float = 45.0  # degrees; 180 covers the whole circle
    max_scale: float = 0.2  # log-uniform scale in [1/(1+s), 1+s]
    max_shift: float = 0.15  # normalised units
    max_shear: float = 0.1
    max_corner: float = 0.15  # corner jitter for projective, normalised units
    max_tps: float = 0.05  # control-point jitter for tps


@dataclass
class TrainConfig:
    mode: str = "supervised"  # "supervised" or "end_to_end"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    seed: int = 0
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    # 0 means lr; STN users report localisers diverging at the task's rate
    localiser_lr: float = 0.0
    weight_decay: float = 0.0
    warmup_steps: int = 100
    grad_clip: float = 1.0
    eval_every: int = 250
    out_dir: str = "runs/default"
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    num_workers: int = 0
    resume: bool = False


MODES = ("supervised", "end_to_end")
DATA_RECIPES = ("synthetic", "phone")


def validate(cfg: TrainConfig) -> TrainConfig:
    m = cfg.model
    checks = [
        (cfg.mode in MODES, "mode", f"must be one of {MODES}"),
        (
            m.family == "none" or m.family in geometry.FAMILIES,
            "model.family",
            f"must be 'none' or one of {geometry.FAMILIES}",
        ),
        (m.channels in (1, 3), "model.channels", "must be 1 or 3"),
        (m.input_size >= 8, "model.input_size", "must be at least 8"),
        (m.tps_grid >= 2, "model.tps_grid", "must be at least 2"),
        (m.coarse_context >= 0, "model.coarse_context", "must be 0 or more"),
        (m.page_mask >= 0, "model.page_mask", "must be 0 or more"),
        (m.transformers in (1, 2), "model.transformers", "must be 1 or 2"),
        (
            m.localiser_init in ("identity", "random"),
            "model.localiser_init",
            "must be identity or random",
        ),
        (m.std > 0, "model.std", "must be positive"),
        (
            m.chain_role in ("", *contract.CHAIN_ROLES),
            "model.chain_role",
            f"must be one of {contract.CHAIN_ROLES} (or empty: the family's own)",
        ),
        (
            set(m.postprocess_steps) <= set(contract.POSTPROCESSES),
            "model.postprocess",
            f"must be a comma-separated list of {contract.POSTPROCESSES}",
        ),
        (
            cfg.data.recipe in DATA_RECIPES,
            "data.recipe",
            f"must be one of {DATA_RECIPES}",
        ),
        (0.0 <= cfg.data.randomise <= 1.0, "data.randomise", "must be a share in [0, 1]"),
        (cfg.steps > 0, "steps", "must be positive"),
        (cfg.batch_size > 0, "batch_size", "must be positive"),
        (cfg.lr > 0, "lr", "must be positive"),
        (cfg.localiser_lr >= 0, "localiser_lr", "must be >= 0"),
        (
            cfg.mode != "supervised" or m.family != "none",
            "model.family",
            "supervised mode needs a transform family",
        ),
        (
            cfg.mode != "end_to_end" or m.classifier != "none",
            "model.classifier",
            "end_to_end mode needs a classifier",
        ),
    ]
    for ok, key, why in checks:
        if not ok:
            raise ConfigError(f"{key}: {why}")
    return cfg


def _cast(key: str, value, kind):
    """Cast a parsed or command-line value to a dataclass field's type, or raise naming the key."""
    kind = {"int": int, "float": float, "str": str, "bool": bool}.get(kind, kind)
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ConfigError(f"{key}: expected true or false, got {value!r}")
            return text.lower() in ("true", "1", "yes")
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(f"{key}: expected {kind.__name__}, got {value!r}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {kind.__name__}, got {type(value).__name__} {value!r}")
    return value


def apply_values(obj, values: dict, prefix: str = "") -> None:
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in fields:
            raise ConfigError(f"{key}: unknown key (expected one of: {', '.join(fields)})")
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a table of settings, got {value!r}")
            apply_values(current, value, f"{key}.")
        else:
            # With postponed annotations a field's type is its name: "int", "float", "str", "bool".
            setattr(obj, name, _cast(key, value, fields[name].type))


def parse_overrides(pairs: list[str]) -> dict:
    """Turn ["model.family=rotation", "steps=100"] into nested dicts of strings."""
    tree: dict = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r}: expected KEY=VALUE, e.g. model.family=rotation")
        key, value = pair.split("=", 1)
        node = tree
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def load_file(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    if path.suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: invalid TOML: {err}") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: invalid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        return data
    raise ConfigError(f"{path}: config files must end in .toml, .yaml or .yml")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    cfg = TrainConfig()
    if path is not None:
        apply_values(cfg, load_file(path))
    apply_values(cfg, parse_overrides(overrides or []))
    return validate(cfg)


def model_config_from_dict(values: dict) -> ModelConfig:
    cfg = ModelConfig()
    apply_values(cfg, values, "model.")
    return cfg
