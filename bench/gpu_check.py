"""GPU check for a lent GPU machine, in one go (a few minutes on one GPU).

    python -m bench.gpu_check [--model-dir exported] [--out runs/gpu_check.md]
    python -m bench.gpu_check --dry-run      # the same steps on the CPU provider, small sizes

1. Every shipped model (MODEL.onnx in --model-dir) gets a session on the CUDA provider alone with
   CPU fallback disabled (session option session.disable_cpu_ep_fallback=1), which onnxruntime
   refuses to create unless every node runs on CUDA; its theta for 8 page-derived inputs must match
   the CPU provider's within THETA_TOL.
2. Its warper graph (MODEL.warp.onnx) likewise, run with I/O binding (image and output on the GPU),
   its rectified page against the CPU provider's within PIXEL_TOL (mean) and PIXEL_MAX_TOL.
3. Throughput: localiser images/s at batch 1, 32 and 128, and end-to-end pages/s over gRPC at
   concurrency 1, 8 and 32 (the server in a child process, STN_DEVICE=cuda, STN_REQUIRE_GPU=true;
   1-megapixel PNG pages in, rectified PNG pages back).
The report (markdown) goes to --out and stdout; the exit status is 1 when any check fails.

--dry-run runs every step on the CPU provider with batches 1 and 2 and concurrency 1 and 2, so CI
can run the script without a GPU; its report says so at the top, and is no GPU figure.

On a lent machine, the package must be importable: `pip install --no-deps --target /tmp/site .`
beside onnxruntime-gpu (../shared/tools/split-wheel.sh carries the wheel), then
`PYTHONPATH=/tmp/site python3 -m bench.gpu_check`.
"""

from __future__ import annotations

import datetime
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
from stn_align.service.models import CPU, CUDA

THETA_TOL = 2e-3  # max |theta_gpu - theta_cpu|: cuDNN picks other convolution algorithms, TF32
PIXEL_TOL = 0.5  # mean |rectified_gpu - rectified_cpu| in grey levels (bilinear rounding)
PIXEL_MAX_TOL = 4  # largest single difference, grey levels
STRICT = {CUDA: ", CPU fallback disabled", CPU: " (dry run)"}


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


def session(path: Path, provider: str, strict: bool):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    # Every node on `provider`, or no session. (Not with the CPU provider itself, which
    # onnxruntime rejects as a contradiction: the dry run checks the rest of the path.)
    if strict and provider != CPU:
        options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    return ort.InferenceSession(str(path), sess_options=options, providers=[provider])


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
    reference = session(path, CPU, strict=False)
    meta = dict(reference.get_modelmeta().custom_metadata_map)
    contract = ModelContract.from_metadata(meta, str(path))
    try:
        target = session(path, provider, strict=True)
    except Exception as exc:  # onnxruntime's Fail: a node would need the CPU
        report.append(
            f"| {name} | localiser | FAIL: no session with CPU fallback disabled: {exc} |"
        )
        return False
    x = model_inputs(contract, images, 2 if args.dry_run else 8)
    (theta_ref,) = reference.run(["theta"], {"image": x})
    (theta,) = target.run(["theta"], {"image": x})
    diff = float(np.abs(np.asarray(theta) - np.asarray(theta_ref)).max())
    ok = target.get_providers()[0] == provider and diff <= THETA_TOL
    report.append(
        f"| {name} | localiser on {target.get_providers()[0]}{STRICT[provider]} | "
        f"{'ok' if ok else 'FAIL'}: max theta difference {diff:.2e} (tolerance {THETA_TOL:g}) |"
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
    reference = session(path, CPU, strict=False)
    try:
        target = session(path, provider, strict=True)
    except Exception as exc:  # a node without a kernel on `provider`
        report.append(f"| {name} | warper | FAIL: no session with CPU fallback disabled: {exc} |")
        return False
    channels = reference.get_inputs()[0].shape[3]
    image = page if not isinstance(channels, int) or channels == 3 else page[:, :, :1].copy()
    out_hw = (page.shape[0], page.shape[1])
    theta = geometry.identity_params(contract.family, contract.tps_grid)
    if contract.family == "rotation":
        theta = geometry.rotation_params(7.0)
    device = "cuda" if provider == CUDA else "cpu"
    got = warp.warp_graph(target, image, theta, out_hw, 255.0, device).astype(np.int16)
    want = warp.warp_graph(reference, image, theta, out_hw, 255.0, "cpu").astype(np.int16)
    mean, worst = float(np.abs(got - want).mean()), int(np.abs(got - want).max())
    ok = got.shape == want.shape and mean <= PIXEL_TOL and worst <= PIXEL_MAX_TOL
    report.append(
        f"| {name} | warper on {target.get_providers()[0]}{STRICT[provider]}, "
        f"I/O binding on {device} | "
        f"{'ok' if ok else 'FAIL'}: mean difference {mean:.3f}, largest {worst} grey levels |"
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
