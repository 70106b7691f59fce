"""The model repository: exported localiser (and warper) graphs in a directory, as ONNX Runtime
sessions on the execution provider that actually bound.

onnxruntime lists CUDAExecutionProvider as available whenever the GPU build is installed, and only
logs when it then fails to load (no GPU, missing CUDA libraries), falling back to the CPU. So the
provider in use is read back from `session.get_providers()[0]` after creating the session, and
`require_gpu` checks that.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stn_align.core.contract import ContractError, ModelContract
from stn_align.core.families import FamilySpec, family_spec

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

    def localise(self, batch: np.ndarray) -> np.ndarray:
        """uint8 [N, S, S, C] -> float32 [N, P + K]: theta, then the K confidence columns when
        the model has them (one row per image, so the batcher can hand rows out; `split` takes
        a row apart)."""
        if not self.has_confidence:
            (theta,) = self.session.run(["theta"], {"image": batch})
            return np.asarray(theta, dtype=np.float32)
        theta, confidence = self.session.run(["theta", "confidence"], {"image": batch})
        rows = len(batch)
        parts = [np.asarray(a, np.float32).reshape(rows, -1) for a in (theta, confidence)]
        return np.concatenate(parts, 1)

    def split(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """A row of `localise` -> (theta (P,), confidence (K,) or None)."""
        count = self.contract.param_count
        return row[:count], (row[count:] if self.has_confidence else None)

    def warmup(self, runs: int, batch_size: int = 1) -> None:
        c = self.contract
        dummy = np.full((batch_size, c.input_size, c.input_size, c.input_channels), 128, np.uint8)
        for _ in range(runs):
            self.localise(dummy)


def providers_for(device: str) -> list[str]:
    return [CPU] if device == "cpu" else [CUDA, CPU]


def _session(path: Path, providers: list[str], threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    # Severity 3 (errors only): the CPU fallback warning is reported by us, once, in plain words.
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
            f"{path}: expected input 'image' and outputs {list(contract.outputs)} (its contract), "
            f"got {inputs} -> {outputs}"
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
                    f"{model.provider}: the CUDA provider did not bind (no GPU visible, "
                    "or CUDA/cuDNN libraries missing)"
                )
            log.warning(
                "CUDA provider not bound, running on CPU",
                extra={"model": name, "provider": model.provider},
            )
        models[name] = model
    return models
