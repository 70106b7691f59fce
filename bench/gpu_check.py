"""GPU check for a lent GPU machine, in one go (a few minutes on one GPU).

    python -m bench.gpu_check [--model-dir exported] [--out runs/gpu_check.md]
    python -m bench.gpu_check --dry-run      # the same steps on the CPU provider, small sizes

1. Every shipped model (MODEL.onnx in --model-dir) gets a session on the CUDA provider (CPU as
   the fallback) and runs once with onnxruntime's profiler on, which records the provider of every
   node. The check fails when any node that computes tensor data ran elsewhere: onnxruntime's CUDA
   provider itself places small integer shape arithmetic (Shape -> Gather -> Concat feeding a
   Reshape) on the CPU, so only nodes whose outputs hold at most SHAPE_ELEMENTS values may run
   there. (Session option session.disable_cpu_ep_fallback=1 is too strict for that reason: it
   refuses any graph with shape arithmetic.) Its theta for 8 page-derived inputs must match the
   CPU provider's within THETA_TOL.
2. Its warper graph (MODEL.warp.onnx) likewise, run with I/O binding (image and output on the GPU),
   its rectified page against the CPU provider's within PIXEL_TOL (mean) and PIXEL_MAX_TOL.
3. Throughput: localiser images/s at batch 1, 32 and 128, and end-to-end pages/s over gRPC at
   concurrency 1, 8 and 32 (the server in a child process, STN_DEVICE=cuda, STN_REQUIRE_GPU=true;
   1-megapixel PNG pages in, rectified PNG pages back).
The report (markdown) goes to --out and stdout; the exit status is 1 when any check fails.

--dry-run runs every step on the CPU provider with batches 1 and 2 and concurrency 1 and 2, so CI
can run the script without a GPU; its report says so at the top, and is no GPU figure.

On a lent machine with no network (as run on 2026-12-04, BENCHMARKS.md#gpu-check): carry the
onnxruntime-gpu wheel in parts (../shared/tools/split-wheel.sh), this package's wheel (`pip wheel
--no-deps --no-build-isolation . -w DIR`) and the service's dependencies missing there
(grpcio-health-checking, grpcio-reflection; grpcio and protobuf at this checkout's versions), put
them in one folder with `pip install --no-index --no-deps --target /tmp/site`, then run
`PYTHONPATH=/tmp/site python3 -m bench.gpu_check` from the checkout. onnxruntime.preload_dlls()
finds CUDA 13 and cuDNN 9 among the machine's own nvidia-* wheels.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from bench.common import argument_parser, concurrent_calls, free_port
from bench.service_bench import encode, start_server
from stn_align.core import geometry
from stn_align.core.contract import ModelContract
from stn_align.core.preprocess import localiser_input
from stn_align.service import warp
from stn_align.service.client import AlignClient, make_request
from stn_align.service.models import CPU, CUDA, providers_for

THETA_TOL = 2e-3  # max |theta_gpu - theta_cpu|: cuDNN picks other convolution algorithms
PIXEL_TOL = 0.5  # mean |rectified_gpu - rectified_cpu| in grey levels (bilinear rounding)
PIXEL_MAX_TOL = 4  # largest single difference, grey levels
SHAPE_ELEMENTS = 64  # a node left on the CPU may output this many values at most (shape arithmetic)
DRY = {CUDA: "", CPU: " (dry run)"}


def synthetic_pages(count: int) -> list[np.ndarray]:
    """About one megapixel each, RGB: lines of letter-like strokes, each page a little turned.
    Made here, so the check needs no data beside the checkout (none travels to a lent machine)."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        page = np.full((1150, 870, 3), 250, np.uint8)
        for y in range(90, 1060, 30):
            words = " ".join(
                "".join(chr(97 + int(c)) for c in rng.integers(0, 26, rng.integers(2, 9)))
                for _ in range(8)
            )
            cv2.putText(page, words, (70, y), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (20, 20, 20), 2)
        turn = cv2.getRotationMatrix2D((435, 575), float(rng.uniform(-8, 8)) + 90 * (i == 2), 1)
        out.append(cv2.warpAffine(page, turn, (870, 1150), borderValue=(250, 250, 250)))
    return out


def session(path: Path, provider: str, profile: bool = False):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(os.environ.get("TMPDIR", "/tmp")) / "gpu_check")
    # The service's own provider list, options included (full float32 on CUDA).
    providers = providers_for("cpu" if provider == CPU else "cuda")
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


def misplaced_nodes(events: list[dict], provider: str) -> tuple[list[str], int]:
    """From an onnxruntime profile: the nodes that computed tensor data off `provider` (as
    "OpType name [elements]"), and how many shape-sized nodes ran off it, which is allowed."""
    bad, small = [], 0
    for event in events:
        args = event.get("args", {})
        if event.get("cat") != "Node" or "provider" not in args or args["provider"] == provider:
            continue
        elements = sum(
            int(np.prod(dims))
            for output in args.get("output_type_shape", [])
            for dims in output.values()
        )
        if elements <= SHAPE_ELEMENTS:
            small += 1
        else:
            name = event["name"].removesuffix("_kernel_time")
            bad.append(f"{args.get('op_name', '?')} {name} [{elements}]")
    return bad, small


def placement(path: Path, provider: str, run) -> tuple[list[str], int]:
    """Run `run(session)` once on a profiled session; see misplaced_nodes."""
    profiled = session(path, provider, profile=True)
    run(profiled)
    trace = Path(profiled.end_profiling())
    try:
        events = json.loads(trace.read_text())
    finally:
        trace.unlink(missing_ok=True)
    return misplaced_nodes(events, provider)


def placement_note(bad: list[str], small: int) -> str:
    if bad:
        return f"FAIL: {len(bad)} nodes with tensor data off the GPU: {', '.join(bad[:6])}"
    return f"ok: no node with tensor data off it ({small} shape-arithmetic nodes on the CPU)"


def model_inputs(contract: ModelContract, images: list[np.ndarray], count: int) -> np.ndarray:
    fill = contract.letterbox_fill
    out = []
    for i in range(count):
        image = images[i % len(images)]
        if i >= len(images):  # more variety than the few pages: shifted and flipped copies
            image = np.roll(image[:, ::-1] if i % 2 else image, 37 * i, axis=0)
        if contract.input_channels == 1:
            image = image.mean(axis=2, keepdims=True).astype(np.uint8)
        out.append(localiser_input(image, contract.input_size, contract.preprocess, fill))
    return np.stack(out)


def timed_rate(run, batch: int, runs: int) -> float:
    run()  # warm-up: cuDNN algorithm search, allocations
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return batch / statistics.median(times)


def check_model(path: Path, provider: str, images, args, report: list[str]) -> bool:
    name = path.name[: -len(".onnx")]
    reference = session(path, CPU)
    meta = dict(reference.get_modelmeta().custom_metadata_map)
    contract = ModelContract.from_metadata(meta, str(path))
    target = session(path, provider)
    x = model_inputs(contract, images, 2 if args.dry_run else 8)
    bad, small = placement(path, provider, lambda s: s.run(["theta"], {"image": x}))
    (theta_ref,) = reference.run(["theta"], {"image": x})
    (theta,) = target.run(["theta"], {"image": x})
    diff = float(np.abs(np.asarray(theta) - np.asarray(theta_ref)).max())
    ok = not bad and target.get_providers()[0] == provider and diff <= THETA_TOL
    report.append(
        f"| {name} | localiser on {target.get_providers()[0]}{DRY[provider]} | "
        f"{placement_note(bad, small)}; max theta difference {diff:.2e} "
        f"(tolerance {THETA_TOL:g}) |"
    )
    warp_path = path.with_name(name + ".warp.onnx")
    if warp_path.exists():
        ok = check_warper(warp_path, provider, contract, images[0], report) and ok
    for batch in args.batches:
        xb = model_inputs(contract, images, batch)
        rate = timed_rate(lambda xb=xb: target.run(["theta"], {"image": xb}), batch, args.runs)
        args.rates.append((name, batch, rate))
    return ok


def check_warper(path: Path, provider: str, contract, page, report: list[str]) -> bool:
    name = path.name[: -len(".warp.onnx")]
    reference = session(path, CPU)
    target = session(path, provider)
    channels = reference.get_inputs()[0].shape[3]
    image = page if not isinstance(channels, int) or channels == 3 else page[:, :, :1].copy()
    out_hw = (page.shape[0], page.shape[1])
    theta = geometry.identity_params(contract.family, contract.tps_grid)
    if contract.family == "rotation":
        theta = geometry.rotation_params(7.0)
    device = "cuda" if provider == CUDA else "cpu"
    bad, small = placement(
        path, provider, lambda s: warp.warp_graph(s, image, theta, out_hw, 255.0, device)
    )
    got = warp.warp_graph(target, image, theta, out_hw, 255.0, device).astype(np.int16)
    want = warp.warp_graph(reference, image, theta, out_hw, 255.0, "cpu").astype(np.int16)
    mean, worst = float(np.abs(got - want).mean()), int(np.abs(got - want).max())
    ok = not bad and got.shape == want.shape and mean <= PIXEL_TOL and worst <= PIXEL_MAX_TOL
    report.append(
        f"| {name} | warper on {target.get_providers()[0]}{DRY[provider]}, "
        f"I/O binding on {device} | {placement_note(bad, small)}; "
        f"mean difference {mean:.3f}, largest {worst} grey levels |"
    )
    return ok


def grpc_rates(args, images) -> list[tuple[int, float]]:
    port = free_port()
    device = (
        {"STN_DEVICE": "cpu"} if args.dry_run else {"STN_DEVICE": "cuda", "STN_REQUIRE_GPU": "true"}
    )
    server = start_server(args.model_dir, port, device)
    try:
        payloads = [make_request(encode(im, "png"), encoding="png") for im in images]
        with AlignClient(f"127.0.0.1:{port}", timeout=120) as client:
            return [
                (c, concurrent_calls(client.align, payloads, c, max(args.calls, 2 * c))[0])
                for c in args.concurrency
            ]
    finally:
        server.terminate()
        server.wait(timeout=60)


def gpu_name() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return out.stdout.strip() or "unknown GPU"
    except OSError:
        return "no nvidia-smi"


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__file__, __doc__)
    parser.add_argument("--model-dir", default="exported", help="the shipped models")
    parser.add_argument("--out", default="runs/gpu_check.md", help="where the report goes")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per batch size (median)")
    parser.add_argument("--calls", type=int, default=96, help="gRPC calls per concurrency level")
    parser.add_argument(
        "--dry-run", action="store_true", help="CPU provider, small sizes: checks the script itself"
    )
    args = parser.parse_args(argv)
    args.batches = (1, 2) if args.dry_run else (1, 32, 128)
    args.concurrency = (1, 2) if args.dry_run else (1, 8, 32)
    if args.dry_run:
        args.runs, args.calls = 1, 4
    args.rates = []
    provider = CPU if args.dry_run else CUDA
    started = time.monotonic()

    import onnxruntime as ort

    if not args.dry_run:
        preload = getattr(ort, "preload_dlls", None)
        if preload is not None:
            preload()  # CUDA and cuDNN from the gpu extra's wheels, when installed that way
        if CUDA not in ort.get_available_providers():
            print(
                "onnxruntime here has no CUDA provider (install onnxruntime-gpu)", file=sys.stderr
            )
            return 1
    images = synthetic_pages(4)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = "DRY RUN on the CPU provider: not GPU figures" if args.dry_run else gpu_name()
    report = [
        "### GPU check",
        "",
        f"`python -m bench.gpu_check{' --dry-run' if args.dry_run else ''}`, {when}; {machine}; "
        f"onnxruntime {ort.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPU cores.",
        "",
        "| model | graph | result |",
        "|---|---|---|",
    ]
    models = sorted(p for p in Path(args.model_dir).glob("*.onnx") if ".warp." not in p.name)
    ok = bool(models)
    for path in models:
        ok = check_model(path, provider, images, args, report) and ok
    report += ["", "| model | batch | localiser images/s |", "|---|---:|---:|"]
    report += [f"| {name} | {batch} | {rate:.0f} |" for name, batch, rate in args.rates]
    report += ["", "| concurrency | pages/s over gRPC (PNG in and out) |", "|---:|---:|"]
    report += [f"| {c} | {rate:.1f} |" for c, rate in grpc_rates(args, images)]
    sizes = ", ".join(f"{im.shape[1]}x{im.shape[0]}" for im in images)
    report += [
        "",
        f"Pages: {sizes} RGB; server default model chain; medians of {args.runs} runs for the "
        f"localiser. Checks {'passed' if ok else 'FAILED'}; "
        f"{time.monotonic() - started:.0f} s in all.",
    ]
    text = "\n".join(report) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
