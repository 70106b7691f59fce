"""The model repository: exported localiser (and warper) graphs in a directory, as ONNX Runtime
sessions on the execution provider that actually bound.

onnxruntime lists CUDAExecutionProvider as available whenever the GPU build is installed, and when
it then fails to load (no GPU, missing CUDA libraries) it prints errors in red and falls back to the
CPU. So CUDA is probed once per process, quietly (`probe_cuda`: onnxruntime.preload_dlls() binds
the CUDA and cuDNN libraries of the `gpu` extra, then one session is made with onnxruntime's own
log silenced), the start-up log gets one line naming the provider and why, and the provider in use
is read back from `session.get_providers()[0]`, which `require_gpu` checks.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stn_align.core.contract import ContractError, ModelContract
from stn_align.core.families import FamilySpec, family_spec
from stn_align.core.preprocess import localiser_input

log = logging.getLogger("stn.service.models")

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


class ModelError(RuntimeError):
    """A model cannot be loaded, or the GPU was required and did not bind."""


@dataclass
class Model:
    name: str  # the file's stem: what callers ask for
    contract: ModelContract  # what the file promises, read from its metadata
    session: Any  # onnxruntime.InferenceSession
    warper: Any | None = None  # onnxruntime.InferenceSession for NAME.warp.onnx
    provider: str = CPU

    @property
    def family(self) -> str:
        return self.contract.family

    @property
    def spec(self) -> FamilySpec:
        return family_spec(self.contract.family)

    @property
    def input_size(self) -> int:
        return self.contract.input_size

    @property
    def input_channels(self) -> int:
        return self.contract.input_channels

    @property
    def has_confidence(self) -> bool:
        """Whether the file also says how sure it is (contract output `confidence`)."""
        return "confidence" in self.contract.outputs

    def small_copy(self, image: np.ndarray) -> np.ndarray:
        """An image already in the model's channels -> its localiser input (S x S x C)."""
        c = self.contract
        return localiser_input(image, c.input_size, c.preprocess, c.letterbox_fill)

    def localise(self, batch: np.ndarray) -> np.ndarray:
        """uint8 [N, S, S, C] -> float32 [N, P] theta, followed by one column per further output
        the contract declares (e.g. "confidence"), so one row per image carries them all."""
        outputs = self.session.run(list(self.contract.outputs), {"image": batch})
        rows = [np.asarray(o, dtype=np.float32).reshape(len(batch), -1) for o in outputs]
        return rows[0] if len(rows) == 1 else np.concatenate(rows, axis=1)

    def split(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """One row of `localise` -> (theta (P,), the `confidence` output's values (K,) or None):
        a projective model gives one (its corners), a rotation model two (orientation, skew)."""
        count = self.contract.param_count
        if not self.has_confidence:
            return row[:count], None
        return row[:count], row[count:]

    def warmup(self, runs: int, batch_size: int = 1) -> None:
        c = self.contract
        dummy = np.full((batch_size, c.input_size, c.input_size, c.input_channels), 128, np.uint8)
        for _ in range(runs):
            self.localise(dummy)


@dataclass(frozen=True)
class CudaProbe:
    bound: bool
    reason: str  # why, in words, for the start-up log
    gpu_visible: bool


_probe: CudaProbe | None = None  # once per process: binding CUDA is a process-wide fact


def probe_cuda(model_path: Path) -> CudaProbe:
    """Whether the CUDA provider binds here, found without onnxruntime printing anything."""
    global _probe
    if _probe is not None:
        return _probe
    import onnxruntime as ort

    gpu_visible = any(Path("/dev").glob("nvidia[0-9]*"))
    if CUDA not in ort.get_available_providers():
        _probe = CudaProbe(False, "this onnxruntime has no CUDA provider", gpu_visible)
        return _probe
    printed = io.StringIO()
    preload = getattr(ort, "preload_dlls", None)  # onnxruntime >= 1.21
    if preload is not None:
        # It prints each library it cannot load; those names go into the reason instead.
        with contextlib.redirect_stdout(printed), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            preload()
    missing = [
        line.split()[2].rstrip(":") for line in printed.getvalue().splitlines()
        if line.startswith("Failed to load ")
    ]  # fmt: skip
    ort.set_default_logger_severity(4)  # fatal only: the failed provider load is reported below
    try:  # a broken model raises ModelError here, as loading it would
        bound = _session(model_path, providers_for("cuda"), 0).get_providers()[0] == CUDA
    finally:
        ort.set_default_logger_severity(2)  # onnxruntime's default, warnings and up
    if bound:
        reason = "CUDA bound"
    elif not gpu_visible:
        reason = "no NVIDIA GPU visible (/dev/nvidia*)"
    elif missing:
        reason = (
            f"CUDA/cuDNN libraries not found ({', '.join(missing[:3])}): install "
            "stn-align[gpu] or use the CUDA base image"
        )
    else:
        reason = "the CUDA provider did not load (driver or CUDA/cuDNN version mismatch?)"
    _probe = CudaProbe(bound, reason, gpu_visible)
    return _probe


# Two of onnxruntime's CUDA defaults do not suit these graphs (both found with bench/gpu_check.py
# and a chain benchmark on an H200, BENCHMARKS.md#gpu-check):
# - TF32 matrix products (10 mantissa bits) are fine for convolutions but not for the graphs' own
#   geometry: they moved doc-perspective's corners (its homography solve) by up to 0.17 and
#   doc-dewarp's thin-plate grid by a pixel, 140 grey levels at a letter's edge. Full float32.
# - With the default exhaustive cuDNN algorithm search the doc chain ran at 8.8 pages/s with 8
#   calls in flight (7.4 even with every batch size warmed up first), with cuDNN's heuristic
#   choice at 44. Why the exhaustive search keeps costing was not found; the heuristic is kept.
CUDA_OPTIONS = {"use_tf32": "0", "cudnn_conv_algo_search": "HEURISTIC"}

Provider = str | tuple[str, dict[str, str]]


def providers_for(device: str) -> list[Provider]:
    return [CPU] if device == "cpu" else [(CUDA, CUDA_OPTIONS), CPU]


def _session(path: Path, providers: list[Provider], threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    # Severity 3 (errors only): the provider in use is reported by us, once, in plain words.
    options.log_severity_level = 3
    # Idle intra-op threads otherwise spin for a while after each run, which on a small CPU
    # takes the cores that decoding and warping for the other requests need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelError(f"cannot load {path}: {exc}") from exc


def load_model(path: Path, device: str = "auto", threads: int = 0) -> Model:
    providers = providers_for(device)
    session = _session(path, providers, threads)
    meta = dict(session.get_modelmeta().custom_metadata_map)
    try:
        contract = ModelContract.from_metadata(meta, str(path))
    except ContractError as exc:
        raise ModelError(str(exc)) from None
    name = path.name[: -len(".onnx")]
    inputs = {i.name for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    if "image" not in inputs or not set(contract.outputs) <= outputs:
        raise ModelError(
            f"{path}: expected input 'image' and outputs {list(contract.outputs)} (its "
            f"contract), got {inputs} -> {outputs}"
        )
    warp_path = path.with_name(name + ".warp.onnx")
    warper = _session(warp_path, providers, threads) if warp_path.exists() else None
    return Model(name, contract, session, warper, provider=session.get_providers()[0])


def load_repository(
    model_dir: str | Path,
    names: list[str] | None = None,
    device: str = "auto",
    require_gpu: bool = False,
    threads: int = 0,
) -> dict[str, Model]:
    directory = Path(model_dir)
    if not directory.is_dir():
        raise ModelError(f"model directory {directory} does not exist (setting model_dir)")
    found = {
        p.name[: -len(".onnx")]: p
        for p in sorted(directory.glob("*.onnx"))
        if not p.name.endswith(".warp.onnx")
    }
    wanted = names or sorted(found)
    missing = [n for n in wanted if n not in found]
    if missing:
        raise ModelError(
            f"models {missing} not in {directory} (setting models); found {sorted(found) or 'none'}"
        )
    if not wanted:
        raise ModelError(f"no models (*.onnx) in {directory} (setting model_dir)")
    if device == "cpu":
        log.info("execution provider", extra={"provider": CPU, "why": "device=cpu"})
    else:
        probe = probe_cuda(found[wanted[0]])
        if not probe.bound:
            if require_gpu or device == "cuda":
                raise ModelError(
                    f"require_gpu (or device=cuda) is set but the CUDA provider did not bind: "
                    f"{probe.reason}"
                )
            device = "cpu"  # sessions without the CUDA provider: no failed load per session
        provider = CUDA if probe.bound else CPU
        # Falling back is expected without a GPU; with one visible, it is a misconfiguration.
        level = logging.WARNING if probe.gpu_visible and not probe.bound else logging.INFO
        log.log(level, "execution provider", extra={"provider": provider, "why": probe.reason})
    models = {}
    for name in wanted:
        model = load_model(found[name], device, threads)
        log.info(
            "loaded model",
            extra={"model": name, "family": model.family, "provider": model.provider},
        )
        if device != "cpu" and model.provider != CUDA:
            if require_gpu or device == "cuda":
                raise ModelError(
                    f"require_gpu (or device=cuda) is set but model {name} runs on "
                    f"{model.provider}: the CUDA provider did not bind for it"
                )
            log.warning(
                "CUDA provider not bound for this model, running on CPU",
                extra={"model": name, "provider": model.provider},
            )
        models[name] = model
    return models
