"""Service settings: the ServiceConfig dataclass gives each setting's type, default, help and check
once; its environment variable (STN_NAME) and flag (--name) follow from the name.

Precedence: default < environment (STN_*) < command-line flag. `load_config` validates everything at
start-up and raises ConfigError naming the offending setting, its variable and its flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import ssl
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


def setting(default: Any, help: str, choices: tuple[str, ...] = (), minimum: float | None = None):
    """A ServiceConfig field with what the flag, the docs and validation need."""
    meta = {"help": help, "choices": choices, "minimum": minimum}
    return dataclasses.field(default=default, metadata=meta)


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


@dataclass(frozen=True)
class ServiceConfig:
    """Every setting, once: its type, default, help and check. Environment variable STN_NAME and
    flag --name-with-dashes come from the field's name."""

    address: str = setting("0.0.0.0:50051", "gRPC listen address host:port (port 0 picks one)")
    reuse_port: bool = setting(
        False,
        "let other processes listen on the same port (SO_REUSEPORT); off: start-up fails when the "
        "port is taken",
    )
    metrics_port: int = setting(
        9100, "Prometheus metrics HTTP port; 0 turns metrics off", minimum=0
    )
    metrics_host: str = setting(
        "", "host the metrics HTTP server listens on; empty: the host of address"
    )
    agent_port: int = setting(
        0,
        "TCP port of a load balancer's agent check (HAProxy agent-check), on metrics_host: one "
        "line, 'ready up 100%' when serving, 'drain' once draining, 'down' before; 0 turns it off",
        minimum=0,
    )
    model_dir: str = setting("exported", "directory of exported models (NAME.onnx, NAME.warp.onnx)")
    models: str = setting("", "comma-separated model names to load; empty loads every model")
    default_model: str = setting(
        "",
        "model (or '+'-joined chain) used when a request names none; empty: doc-rotation when "
        "loaded, else the only model",
    )
    device: str = setting(
        "auto",
        "auto (CUDA when it binds, else CPU), cuda (CUDA or fail), cpu",
        choices=("auto", "cuda", "cpu"),
    )
    require_gpu: bool = setting(False, "fail start-up unless the CUDA provider is actually bound")
    warp: str = setting(
        "auto",
        "rectification: opencv (CPU), graph (exported warper via ONNX Runtime I/O binding), "
        "auto (graph on CUDA, else opencv)",
        choices=("auto", "opencv", "graph"),
    )
    page_edges: str = setting(
        "auto",
        "projective models whose corners are snapped to the page's edges in a grey copy of the "
        "photo: auto (those whose model contract asks for it), none, or comma-separated names",
    )
    min_corner_confidence: float = setting(
        0.5,
        "a projective model's corner confidence below which its stage is the identity (no page "
        "found, no warp); doc-perspective's says how likely its warp beats none, so 0.5 is even "
        "odds; 0 keeps every answer",
        minimum=0,
    )
    min_orientation_confidence: float = setting(
        0.5,
        "rotation models that report a confidence: below this orientation confidence (0-1) a "
        "page is not turned by quarter turns (its skew is still corrected when that part is "
        "sure; a page with nothing to read comes back as it is) and is flagged for review",
        minimum=0,
    )
    second_read_below: float = setting(
        0.95,
        "rotation models that report a confidence: below this orientation confidence (0-1) the "
        "page's four quarters are read again at about twice the resolution and the five reads "
        "vote on which way is up (service/orientation.py); 0 turns the second read off",
        minimum=0,
    )
    second_corner_read: bool = setting(
        True,
        "projective models that report a corner confidence read a photo again when the page the "
        "first read found is small (under service/corners.py's MAX_PAGE_AREA of the photo), "
        "cropped to that page with a margin, and keep the second read's corners",
    )
    max_batch_size: int = setting(16, "most images per localiser run", minimum=1)
    max_queue_delay_ms: float = setting(2.0, "longest wait for a batch to fill, ms", minimum=0)
    max_queue_size: int = setting(
        256, "images waiting per model before RESOURCE_EXHAUSTED", minimum=1
    )
    max_concurrent_rpcs: int = setting(
        256,
        "Align and AlignStream calls running or waiting for a worker before new ones get "
        "RESOURCE_EXHAUSTED (health checks and ListModels are not counted)",
        minimum=1,
    )
    retry_after_ms: int = setting(
        1000,
        "the retry-after-ms hint (trailing metadata) sent with RESOURCE_EXHAUSTED for overload",
        minimum=0,
    )
    workers: int = setting(32, "gRPC handler threads for Align and AlignStream", minimum=1)
    control_workers: int = setting(
        4,
        "gRPC handler threads for health checks and ListModels (and as many for health Watch "
        "streams)",
        minimum=1,
    )
    stream_concurrency: int = setting(
        16, "items per AlignStream call taken and not yet sent back", minimum=1
    )
    max_message_mb: int = setting(64, "largest request/response message, MiB", minimum=1)
    max_pixels: int = setting(100_000_000, "largest image (input or output), pixels", minimum=1)
    max_inflight_mb: int = setting(
        2048,
        "server-wide budget for the decoded and output images of the calls being worked on, MiB "
        "(estimated from each image's header before decoding)",
        minimum=1,
    )
    memory_wait_s: float = setting(
        5.0,
        "how long a call waits for room in max_inflight_mb before RESOURCE_EXHAUSTED",
        minimum=0,
    )
    max_chain_length: int = setting(8, "most models in one request's chain", minimum=1)
    warmup_runs: int = setting(2, "localiser runs per model before health says SERVING", minimum=0)
    batch_workers: int = setting(
        0,
        "localiser batches run at once per model; 0: one per CPU core (at most 4) on CPU, "
        "1 on CUDA",
        minimum=0,
    )
    ort_threads: int = setting(
        0,
        "ONNX Runtime intra-op threads per run; 0: the CPU cores shared among the batch workers",
        minimum=0,
    )
    drain_delay_s: float = setting(
        1.0, "on SIGTERM, NOT_SERVING this long before refusing calls", minimum=0
    )
    drain_grace_s: float = setting(30.0, "then wait this long for calls in flight", minimum=0)
    tls_cert: str = setting("", "PEM certificate file; with tls_key turns TLS on")
    tls_key: str = setting("", "PEM private key file")
    auth_token: str = setting(
        "", "when set, calls must send metadata 'authorization: Bearer TOKEN'"
    )
    log_level: str = setting("INFO", "log level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    log_format: str = setting("json", "json (one object a line) or text", choices=("json", "text"))

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb * 1024 * 1024

    @property
    def max_inflight_bytes(self) -> int:
        return self.max_inflight_mb * 1024 * 1024

    @property
    def listen_host(self) -> str:
        """The host part of address, without IPv6 brackets."""
        return self.address.rpartition(":")[0].strip("[]")

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

    def replace(self, **changes: Any) -> ServiceConfig:
        return validate(dataclasses.replace(self, **changes))


_PARSERS: dict[str, Callable[[str], Any]] = {"str": str, "int": int, "float": float, "bool": _bool}
SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, f.default, _PARSERS[str(f.type)], **f.metadata)
    for f in dataclasses.fields(ServiceConfig)
)
_BY_NAME = {s.name: s for s in SETTINGS}


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
    if config.tls_cert:
        _check_key_pair(config.tls_cert, config.tls_key)
    host, sep, port = config.address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(
            f"{_describe(_BY_NAME['address'])}: expected host:port, got {config.address!r}"
        )
    for name in ("min_corner_confidence", "min_orientation_confidence", "second_read_below"):
        if getattr(config, name) > 1:
            raise ConfigError(
                f"{_describe(_BY_NAME[name])}: "
                f"{getattr(config, name)} is above 1 (confidences run from 0 to 1)"
            )
    if config.require_gpu and config.device == "cpu":
        raise ConfigError("settings require_gpu and device=cpu contradict each other")
    return config


def _check_key_pair(cert: str, key: str) -> None:
    """Load the pair as a TLS server would, so a bad or mismatched pair fails start-up with the
    settings named (gRPC itself only says it failed to bind)."""

    def no_password() -> bytes:  # gRPC cannot use an encrypted key; never prompt on a terminal
        raise ValueError("the private key is encrypted")

    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=no_password)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(
            f"settings tls_cert and tls_key ({cert}, {key}): not a usable PEM certificate and "
            f"matching private key: {exc}"
        ) from None


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
            help=f"{s.help} (default {default!r})".replace("%", "%%"),  # argparse formats help
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
