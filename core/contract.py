"""The model contract: what an exported localiser file promises the code that runs it.

Export writes it into the ONNX file's metadata (`to_metadata`), the service reads it back
(`from_metadata`), and tests build it. Every key is typed here once.

    contract = ModelContract(name="doc-rotation", family="rotation", input_size=768)
    meta = contract.to_metadata()                 # dict[str, str] for onnx metadata_props
    ModelContract.from_metadata(meta, "m.onnx")   # ContractError naming the file and the key

Version history (bump CONTRACT_VERSION when a reader of the old version would misread a file):
1. name, family, input size/channels/dtype/layout, preprocess, letterbox fill, tps grid,
   normalisation, outputs, chain role, post-processing, graph, producer, metrics.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

from stn_align.core import geometry

CONTRACT_VERSION = 1
PRODUCER = "stn-align"
CONVENTION = (
    "grid_sample align_corners=False; theta maps output normalised coords to input normalised "
    "coords; see stn_align.core.geometry"
)
CHAIN_ROLES = ("any", "first", "last")
POSTPROCESSES = ("page_edges",)  # corners snapped to the page's own edges (projective)
GRAPHS = ("localiser", "warper")
# Outputs a localiser graph may declare, each with the batch as its first axis:
# - theta (N, P): the family's parameters;
# - confidence (N, K) in [0, 1]: how sure the model is. Column 0: of its orientation (which
#   quarter turn is upright); column 1, when K > 1: of its skew (0.5 and over: sure). The service
#   leaves a page's orientation alone below its min_orientation_confidence setting.
OUTPUTS = ("theta", "confidence")


class ContractError(ValueError):
    """A model file's metadata does not meet the contract."""


@dataclass(frozen=True)
class ModelContract:
    name: str
    family: str
    input_size: int  # side of the square localiser input
    input_channels: int = 1  # 1 grey or 3 RGB; the graph converts to what the model uses
    input_dtype: str = "uint8"  # uint8 or float32; pixel values in [0, 255] either way
    input_layout: str = "NHWC"
    preprocess: str = ""  # "letterbox" or "stretch"; "" means the family's own
    letterbox_fill: int = 0
    tps_grid: int = 4
    mean: float = 0.5  # normalisation inside the graph: (x / 255 - mean) / std
    std: float = 0.5
    outputs: tuple[str, ...] = ("theta",)
    chain_role: str = "any"  # "first": sees the raw photo; "last": nothing composes after it
    postprocess: tuple[str, ...] = ()
    graph: str = "localiser"
    producer: str = PRODUCER
    metrics: Mapping[str, float | int | None] = field(default_factory=dict)
    version: int = CONTRACT_VERSION

    def __post_init__(self) -> None:
        try:
            geometry.check_family(self.family)
        except ValueError as exc:
            raise ContractError(f"family: {exc}") from None
        if not self.preprocess:
            object.__setattr__(self, "preprocess", geometry.preprocess_mode(self.family))
        checks = [
            ("input_size", self.input_size >= 1),
            ("input_channels", self.input_channels in (1, 3)),
            ("input_dtype", self.input_dtype in ("uint8", "float32")),
            ("input_layout", self.input_layout == "NHWC"),
            ("preprocess", self.preprocess in ("letterbox", "stretch")),
            ("letterbox_fill", 0 <= self.letterbox_fill <= 255),
            ("tps_grid", self.tps_grid >= 2),
            ("std", self.std > 0),
            ("outputs", "theta" in self.outputs and set(self.outputs) <= set(OUTPUTS)),
            ("chain_role", self.chain_role in CHAIN_ROLES),
            ("postprocess", set(self.postprocess) <= set(POSTPROCESSES)),
            ("graph", self.graph in GRAPHS),
        ]
        for key, ok in checks:
            if not ok:
                raise ContractError(f"{key}: bad value {getattr(self, key)!r}")
        if "page_edges" in self.postprocess and self.family != "projective":
            raise ContractError(
                f"postprocess: page_edges needs a projective model, not {self.family}"
            )
        if self.family == "tps" and self.chain_role != "last":
            raise ContractError("chain_role: a thin-plate-spline model can only be last in a chain")

    @property
    def param_count(self) -> int:
        return geometry.param_count(self.family, self.tps_grid)

    def to_metadata(self) -> dict[str, str]:
        """ONNX metadata_props: one string per key; lists and mappings as JSON."""
        meta = {}
        for key, value in asdict(self).items():
            meta[key] = value if isinstance(value, str) else json.dumps(value)
        meta["contract_version"] = meta.pop("version")
        meta["param_count"] = str(self.param_count)  # for readers of the file alone
        meta["convention"] = CONVENTION
        return meta

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], source: str = "model") -> ModelContract:
        version = meta.get("contract_version")
        if version is None:
            raise ContractError(
                f"{source}: no contract_version in its metadata (made before the model contract); "
                "export it again with this version"
            )
        if not version.isdigit() or int(version) > CONTRACT_VERSION:
            raise ContractError(
                f"{source}: contract_version {version!r} is newer than this reader's "
                f"({CONTRACT_VERSION}); upgrade stn-align to load it"
            )
        values: dict[str, object] = {"version": int(version)}
        for f in fields(cls):
            if f.name == "version" or f.name not in meta:
                continue
            raw = meta[f.name]
            if f.type == "str":
                values[f.name] = raw
                continue
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                raise ContractError(f"{source}: metadata {f.name}={raw!r} is not JSON") from None
            values[f.name] = tuple(value) if isinstance(value, list) else value
        try:
            contract = cls(**values)  # type: ignore[arg-type]
        except TypeError as exc:
            raise ContractError(f"{source}: {exc}") from None
        except ContractError as exc:
            raise ContractError(f"{source}: {exc}") from None
        declared = meta.get("param_count")
        if declared is not None and declared != str(contract.param_count):
            raise ContractError(
                f"{source}: param_count {declared} does not match family {contract.family} "
                f"({contract.param_count})"
            )
        return contract
