"""`stn export CHECKPOINT -o exported/NAME.onnx`: the localiser and warper graphs, checked.

Writes
- NAME.onnx: the localiser. `image` (N, S, S, C) NHWC pixels in [0, 255], uint8 by default or
  float32 with --input-dtype float32 -> `theta` float32 (N, P), and any other outputs the
  localiser declares, named in the contract's `outputs`: doc-perspective's `confidence` (N, 1)
  and doc-rotation's (N, 2: orientation, skew), in [0, 1].
  Grey conversion and normalisation are inside the graph. Its metadata is the model contract
  (stn_align.core.contract.ModelContract), which the service reads.
- NAME.warp.onnx: the family's warper. `image` uint8 (N, H, W, C), `theta` (N, P),
  `out_size` int64 (2,) = (out_h, out_w), `fill` float32 (1,) -> `rectified` uint8
  (N, out_h, out_w, C). The output size is a graph input, not baked in.

The export-only wrappers below hold no control flow, and the grid is built with MatMul/Div over a
base grid: ONNX Runtime has no CUDA kernel for AffineGrid, and matrix inverse does not export. After
writing, every graph is checked with onnx.checker, against an allow-list of ops that the CUDA
provider implements, and numerically against PyTorch at two batch sizes. A mismatch raises.
"""

from __future__ import annotations

import dataclasses
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stn_align.core import geometry
from stn_align.core.contract import PRODUCER, ModelContract
from stn_align.core.families import FAMILIES
from stn_align.training.config import ModelConfig
from stn_align.training.families import Family
from stn_align.training.model import SpatialTransformer
from stn_align.training.sampler import sample

OPSET = 17
# Ops with CUDA kernels in ONNX Runtime (docs/OperatorKernels.md, CUDAExecutionProvider section).
CUDA_OPS = frozenset(
    {
        "Abs",
        "Add",
        "AveragePool",
        "BatchNormalization",
        "Cast",
        "Clip",
        "Concat",
        "Constant",
        "ConstantOfShape",
        "Conv",
        "Div",
        "Einsum",
        "Equal",
        "Exp",
        "Expand",
        "Flatten",
        "Gather",
        "Gemm",
        "GlobalAveragePool",
        "GridSample",
        "Identity",
        "Less",
        "Log",
        "MatMul",
        "Max",
        "MaxPool",
        "Min",
        "Mul",
        "Neg",
        "Pow",
        "Range",
        "ReduceMean",
        "ReduceSum",
        "Relu",
        "Reshape",
        "Resize",
        "Round",
        "Shape",
        "Slice",
        "Split",
        "Sqrt",
        "Squeeze",
        "Sub",
        "Tile",
        "Transpose",
        "Unsqueeze",
        "Where",
    }
)
FORBIDDEN_OPS = frozenset({"AffineGrid", "Inverse"})


class LocaliserGraph(nn.Module):
    """Export-only: NHWC pixels (uint8 or float in [0, 255]) in, theta out; and, for a localiser
    that gives one, `confidence` (N, 1), the sigmoid of its confidence logit, in [0, 1]."""

    def __init__(self, stn: SpatialTransformer, input_channels: int):
        super().__init__()
        self.stn = stn
        self.to_grey = input_channels == 3 and stn.config.channels == 1

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.stn.output_names

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = image.permute(0, 3, 1, 2).float()
        if self.to_grey:
            # The same weights as cv2.COLOR_RGB2GRAY, so the graph matches preprocess.to_channels.
            weights = torch.tensor([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)
            x = (x * weights).sum(dim=1, keepdim=True)
        return self.stn.predict_outputs(x)


class WarperGraph(nn.Module):
    """Export-only: full-resolution image + theta + output size -> rectified image."""

    def __init__(self, family: Family):
        super().__init__()
        self.family = family

    def forward(self, image, theta, out_size, fill):
        x = image.permute(0, 3, 1, 2).float()
        in_hw = torch._shape_as_tensor(x)[2:]
        grid = self.family.grid(theta, in_hw, out_size)
        # Sampling a plane of ones alongside the image gives each output pixel's in-bounds weight,
        # which blends the constant fill into the border exactly as OpenCV's BORDER_CONSTANT does.
        ones = torch.ones_like(x[:, :1])
        sampled = sample(torch.cat([x, ones], dim=1), grid)
        inside = sampled[:, -1:]
        out = sampled[:, :-1] + fill.reshape(1, 1, 1, 1) * (1 - inside)
        return out.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def _export(module: nn.Module, args: tuple, path: Path, names: tuple, dynamic_axes: dict) -> None:
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo, which cannot yet take an
        # output size as a tensor input; we keep the older one and silence its notice.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(names[0]),
            output_names=list(names[1]),
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )


def graph_ops(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


def check_ops(path: Path) -> None:
    ops = graph_ops(path)
    if ops & FORBIDDEN_OPS:
        raise RuntimeError(f"{path}: forbidden ops {sorted(ops & FORBIDDEN_OPS)}")
    if ops - CUDA_OPS:
        raise RuntimeError(
            f"{path}: ops without a CUDA kernel allow-listed: {sorted(ops - CUDA_OPS)}"
        )


def set_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=str(value))
    model.producer_name = PRODUCER
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def read_metadata(path: str | Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def read_contract(path: str | Path) -> ModelContract:
    return ModelContract.from_metadata(read_metadata(path), str(path))


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def verify_localiser(
    path: Path, wrapper: LocaliserGraph, size: int, channels: int, dtype: str, atol: float = 1e-4
) -> float:
    """Compare ONNX Runtime with PyTorch at batch 1 and 5, every output; return the max abs
    difference."""
    session, rng, worst = _session(path), np.random.default_rng(0), 0.0
    names = list(wrapper.outputs)
    # A localiser whose answer on pure noise is chaotic (doc-photo's corner patches amplify
    # float rounding there) draws its own test images: see PhotoCascade.parity_images.
    draw = getattr(wrapper.stn.localiser, "parity_images", None)
    for batch in (1, 5):
        if draw is not None:
            image = draw(rng, batch, size, channels).astype(dtype)
        else:
            image = rng.integers(0, 256, size=(batch, size, size, channels)).astype(dtype)
        with torch.no_grad():
            wants = [w.numpy() for w in wrapper(torch.from_numpy(image))]
        for name, got, want in zip(names, session.run(names, {"image": image}), wants, strict=True):
            np.testing.assert_allclose(
                got,
                want,
                atol=atol,
                rtol=1e-3,
                err_msg=f"{path}: ONNX and PyTorch disagree on {name} at batch {batch}",
            )
            worst = max(worst, float(np.abs(got - want).max()))
    return worst


def verify_warper(path: Path, wrapper: WarperGraph, theta: np.ndarray, channels: int) -> float:
    """Compare ONNX Runtime with PyTorch at batch 1 and 3, two non-square sizes. Returns the
    largest grey-level difference; more than 1 level anywhere is a failure."""
    session, rng, worst = _session(path), np.random.default_rng(1), 0
    for batch, in_hw, out_hw in ((1, (37, 53), (41, 29)), (3, (64, 48), (32, 80))):
        image = rng.integers(0, 256, size=(batch, *in_hw, channels), dtype=np.uint8)
        th = np.repeat(theta[None], batch, axis=0).astype(np.float32)
        feeds = {
            "image": image,
            "theta": th,
            "out_size": np.array(out_hw, dtype=np.int64),
            "fill": np.array([255.0], dtype=np.float32),
        }
        with torch.no_grad():
            want = wrapper(*(torch.from_numpy(v) for v in feeds.values())).numpy().astype(int)
        got = session.run(["rectified"], feeds)[0].astype(int)
        if got.shape != (batch, *out_hw, channels):
            raise RuntimeError(
                f"{path}: output shape {got.shape}, want {(batch, *out_hw, channels)}"
            )
        diff = int(np.abs(got - want).max())
        if diff > 1:
            raise RuntimeError(f"{path}: ONNX and PyTorch warps differ by {diff} grey levels")
        worst = max(worst, diff)
    return worst


def model_contract(
    cfg: ModelConfig,
    name: str,
    channels: int,
    input_dtype: str = "uint8",
    metrics: dict | None = None,
    outputs: tuple[str, ...] = ("theta",),
) -> ModelContract:
    """The contract a localiser graph exported from `cfg` promises (stn_align.core.contract)."""
    dense = FAMILIES[cfg.family].dense
    return ModelContract(
        name=name,
        family=cfg.family,
        input_size=cfg.input_size,
        input_channels=channels,
        input_dtype=input_dtype,
        preprocess=geometry.preprocess_mode(cfg.family),
        letterbox_fill=cfg.letterbox_fill,
        tps_grid=cfg.tps_grid,
        mean=cfg.mean,
        std=cfg.std,
        outputs=outputs,
        chain_role=cfg.chain_role or ("last" if dense else "any"),
        postprocess=cfg.postprocess_steps,
        producer=f"{PRODUCER} {version('stn-align-training')}",
        metrics={
            k: v for k, v in (metrics or {}).items() if v is None or isinstance(v, int | float)
        },
    )


def export_model(
    stn: SpatialTransformer,
    out: str | Path,
    name: str | None = None,
    input_channels: int | None = None,
    metrics: dict | None = None,
    input_dtype: str = "uint8",
) -> dict:
    """Export, check and return a report: paths, ops and the parity errors measured."""
    cfg = stn.config
    out = Path(out)
    if out.suffix != ".onnx" or out.name.endswith(".warp.onnx"):
        raise ValueError(f"output must be NAME.onnx (the warper goes beside it), got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    name = name or out.stem
    channels = input_channels or cfg.channels
    if input_dtype not in ("uint8", "float32"):
        raise ValueError(f"input_dtype must be uint8 or float32, got {input_dtype!r}")
    if channels not in (1, 3) or (channels == 1 and cfg.channels == 3):
        raise ValueError(f"input_channels {channels} cannot feed a {cfg.channels}-channel model")
    stn = stn.eval().cpu()
    size = cfg.input_size
    # eval() on the wrappers: the exporter restores their mode afterwards, and BatchNorm must stay
    # in inference mode for the parity check.
    localiser = LocaliserGraph(stn, channels).eval()
    contract = model_contract(cfg, name, channels, input_dtype, metrics, localiser.outputs)
    example = torch.zeros(2, size, size, channels, dtype=getattr(torch, input_dtype))
    _export(
        localiser,
        (example,),
        out,
        (("image",), localiser.outputs),
        {"image": {0: "batch"}, **{name: {0: "batch"} for name in localiser.outputs}},
    )
    set_metadata(out, contract.to_metadata())

    warp_path = out.with_name(f"{out.stem}.warp.onnx")
    warper = WarperGraph(stn.family).eval()
    args = (
        torch.zeros(2, 24, 32, channels, dtype=torch.uint8),
        stn.family.identity().reshape(1, -1).repeat(2, 1),
        torch.tensor([20, 28]),
        torch.tensor([0.0]),
    )
    _export(
        warper,
        args,
        warp_path,
        (("image", "theta", "out_size", "fill"), ("rectified",)),
        {
            "image": {0: "batch", 1: "height", 2: "width"},
            "theta": {0: "batch"},
            "rectified": {0: "batch", 1: "out_height", 2: "out_width"},
        },
    )
    set_metadata(warp_path, dataclasses.replace(contract, graph="warper").to_metadata())

    for path in (out, warp_path):
        check_ops(path)
    # A non-trivial theta, so parity covers more than the identity.
    rng = np.random.default_rng(2)
    theta = geometry.identity_params(cfg.family, cfg.tps_grid) + rng.normal(
        0, 0.05, stn.family.num_params
    ).astype(np.float32)
    with torch.no_grad():
        theta = stn.family.params(torch.from_numpy(theta)[None])[0].numpy()
    return {
        "localiser": str(out),
        "warper": str(warp_path),
        "localiser_max_abs_diff": verify_localiser(out, localiser, size, channels, input_dtype),
        "warper_max_grey_diff": verify_warper(warp_path, warper, theta, channels),
        "ops": sorted(graph_ops(out) | graph_ops(warp_path)),
        "size_bytes": out.stat().st_size,
    }
