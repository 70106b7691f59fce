"""Service settings: one table gives each setting's default, environment variable, flag and check.

Precedence: default < environment (STN_*) < command-line flag. `load_config` validates everything at
start-up and raises ConfigError naming the offending setting, its variable and its flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AUTO_BATCH_WORKERS = 4
CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "QUOTA PERIOD" or "max PERIOD"


class ConfigError(ValueError):
    pass


def cpu_cores() -> int:
    """The cores this process may use: its CPU set, capped by a cgroup v2 CPU quota (a container's
    --cpus) rounded up. os.cpu_count() alone would give the host's cores."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    try:
        quota, period = CPU_MAX.read_text().split()
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota to read
    return cores


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true/false, got {text!r}")


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    parse: Callable[[str], Any]
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None

    @property
    def env(self) -> str:
        return "STN_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("address", "0.0.0.0:50051", str, "gRPC listen address host:port (port 0 picks one)"),
    Setting(
        "metrics_port", 9100, int, "Prometheus metrics HTTP port; 0 turns metrics off", minimum=0
    ),
    Setting(
        "model_dir", "exported", str, "directory of exported models (NAME.onnx, NAME.warp.onnx)"
    ),
    Setting("models", "", str, "comma-separated model names to load; empty loads every model"),
    Setting(
        "default_model",
        "",
        str,
        "model (or '+'-joined chain) used when a request names none; empty: "
        "doc-rotation when loaded, else the only model",
    ),
    Setting(
        "device",
        "auto",
        str,
        "auto (CUDA when it binds, else CPU), cuda (CUDA or fail), cpu",
        ("auto", "cuda", "cpu"),
    ),
    Setting(
        "require_gpu", False, _bool, "fail start-up unless the CUDA provider is actually bound"
    ),
    Setting(
        "warp",
        "auto",
        str,
        "rectification: opencv (CPU), graph (exported warper via ONNX Runtime I/O binding), "
        "auto (graph on CUDA, else opencv)",
        ("auto", "opencv", "graph"),
    ),
    Setting(
        "page_edges",
        "doc-perspective",
        str,
        "comma-separated projective models whose corners are snapped to the page's edges in a "
        "grey copy of the photo; empty turns it off",
    ),
    Setting("max_batch_size", 16, int, "most images per localiser run", minimum=1),
    Setting("max_queue_delay_ms", 2.0, float, "longest wait for a batch to fill, ms", minimum=0),
    Setting(
        "max_queue_size", 256, int, "images waiting per model before RESOURCE_EXHAUSTED", minimum=1
    ),
    Setting(
        "max_concurrent_rpcs", 256, int, "calls in progress before RESOURCE_EXHAUSTED", minimum=1
    ),
    Setting("workers", 32, int, "gRPC handler threads", minimum=1),
    Setting("stream_concurrency", 16, int, "items in flight per AlignStream call", minimum=1),
    Setting("max_message_mb", 64, int, "largest request/response message, MiB", minimum=1),
    Setting("max_pixels", 100_000_000, int, "largest image (input or output), pixels", minimum=1),
    Setting(
        "warmup_runs", 2, int, "localiser runs per model before health says SERVING", minimum=0
    ),
    Setting(
        "batch_workers",
        0,
        int,
        "localiser batches run at once per model; 0: one per CPU core (at most 4) on CPU, "
        "1 on CUDA",
        minimum=0,
    ),
    Setting(
        "ort_threads",
        0,
        int,
        "ONNX Runtime intra-op threads per run; 0: the CPU cores shared among the batch workers",
        minimum=0,
    ),
    Setting(
        "drain_delay_s",
        1.0,
        float,
        "on SIGTERM, NOT_SERVING this long before refusing calls",
        minimum=0,
    ),
    Setting("drain_grace_s", 30.0, float, "then wait this long for calls in flight", minimum=0),
    Setting("tls_cert", "", str, "PEM certificate file; with tls_key turns TLS on"),
    Setting("tls_key", "", str, "PEM private key file"),
    Setting(
        "auth_token", "", str, "when set, calls must send metadata 'authorization: Bearer TOKEN'"
    ),
    Setting("log_level", "INFO", str, "log level", ("DEBUG", "INFO", "WARNING", "ERROR")),
    Setting("log_format", "json", str, "json (one object a line) or text", ("json", "text")),
)
_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class ServiceConfig:
    address: str = "0.0.0.0:50051"
    metrics_port: int = 9100
    model_dir: str = "exported"
    models: str = ""
    default_model: str = ""
    device: str = "auto"
    require_gpu: bool = False
    warp: str = "auto"
    page_edges: str = "doc-perspective"
    max_batch_size: int = 16
    max_queue_delay_ms: float = 2.0
    max_queue_size: int = 256
    max_concurrent_rpcs: int = 256
    workers: int = 32
    stream_concurrency: int = 16
    max_message_mb: int = 64
    max_pixels: int = 100_000_000
    warmup_runs: int = 2
    batch_workers: int = 0
    ort_threads: int = 0
    drain_delay_s: float = 1.0
    drain_grace_s: float = 30.0
    tls_cert: str = ""
    tls_key: str = ""
    auth_token: str = ""
    log_level: str = "INFO"
    log_format: str = "json"

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * 1024 * 1024

    @property
    def model_names(self) -> list[str]:
        return [n.strip() for n in self.models.split(",") if n.strip()]

    def cpu_batch_workers(self) -> int:
        """Localiser batches at once per model on the CPU provider. Auto is one per core up to
        AUTO_BATCH_WORKERS: each run holds its own activations."""
        return self.batch_workers or min(cpu_cores(), AUTO_BATCH_WORKERS)

    def batch_workers_for(self, on_cuda: bool) -> int:
        """Localiser batches at once for a model on CUDA (auto: one, the GPU queues) or the CPU."""
        return (self.batch_workers or 1) if on_cuda else self.cpu_batch_workers()

    def intra_op_threads(self) -> int:
        return self.ort_threads or max(1, cpu_cores() // self.cpu_batch_workers())

    @property
    def page_edge_models(self) -> set[str]:
        return {n.strip() for n in self.page_edges.split(",") if n.strip()}

    def replace(self, **changes: Any) -> ServiceConfig:
        return validate(dataclasses.replace(self, **changes))


def _describe(setting: Setting) -> str:
    return f"setting {setting.name} ({setting.env} / {setting.flag})"


def _parse(setting: Setting, text: str) -> Any:
    try:
        return setting.parse(text)
    except ValueError as exc:
        raise ConfigError(f"{_describe(setting)}: cannot parse {text!r}: {exc}") from None


def validate(config: ServiceConfig) -> ServiceConfig:
    for setting in SETTINGS:
        value = getattr(config, setting.name)
        if setting.choices and value not in setting.choices:
            raise ConfigError(
                f"{_describe(setting)}: {value!r} is not one of {', '.join(setting.choices)}"
            )
        if setting.minimum is not None and value < setting.minimum:
            raise ConfigError(
                f"{_describe(setting)}: {value} is below the minimum {setting.minimum}"
            )
    if bool(config.tls_cert) != bool(config.tls_key):
        raise ConfigError("settings tls_cert and tls_key (STN_TLS_CERT, STN_TLS_KEY) go together")
    for name in ("tls_cert", "tls_key"):
        path = getattr(config, name)
        if path and not Path(path).is_file():
            raise ConfigError(f"{_describe(_BY_NAME[name])}: no such file {path}")
    host, sep, port = config.address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(
            f"{_describe(_BY_NAME['address'])}: expected host:port, got {config.address!r}"
        )
    if config.require_gpu and config.device == "cpu":
        raise ConfigError("settings require_gpu and device=cpu contradict each other")
    return config


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; unset flags stay None so the environment and defaults show through."""
    group = parser.add_argument_group(
        "service settings (flags override STN_* environment variables)"
    )
    for s in SETTINGS:
        default = "" if s.name == "auth_token" else s.default  # never echo a secret in --help
        group.add_argument(
            s.flag,
            dest=f"cfg_{s.name}",
            default=None,
            metavar=s.env,
            help=f"{s.help} (default {default!r})",
        )


def load_config(
    environ: Mapping[str, str] | None = None, args: argparse.Namespace | None = None
) -> ServiceConfig:
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for s in SETTINGS:
        if s.env in environ:
            values[s.name] = _parse(s, environ[s.env])
        flag_value = getattr(args, f"cfg_{s.name}", None) if args is not None else None
        if flag_value is not None:
            values[s.name] = _parse(s, flag_value)
    return validate(ServiceConfig(**values))
