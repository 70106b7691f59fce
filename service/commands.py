"""`stn serve`, `stn align` and `stn rectify`. Nothing heavy is imported until a command runs."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

CLIENT_HELP = "server address host:port; several (comma-separated or repeated) are used in turn"


def add_commands(subparsers) -> None:
    from stn_align.service.config import add_flags

    serve = subparsers.add_parser(
        "serve",
        help="run the gRPC alignment server",
        description="Serve the models in a model directory over gRPC, with health, reflection and "
        "Prometheus metrics. Every setting can come from an STN_* environment variable or a flag.",
    )
    add_flags(serve)
    serve.set_defaults(run=run_serve)

    align = subparsers.add_parser(
        "align",
        help="align one image and print its transform as JSON",
        description="Send IMAGE to the server (or run --local) and print theta, the 3x3 pixel "
        "matrix (output -> input), the angle, corners and timings as JSON, and write the "
        "rectified image (--output, or IMAGE_NAME.rectified.png here).",
    )
    align.add_argument("image", help="image file (PNG, JPEG, TIFF, WebP, BMP)")
    align.add_argument(
        "-o", "--output",
        help="where to write the rectified image, .png or .jpg (default: IMAGE_NAME.rectified.png "
        "in the current directory)",
    )  # fmt: skip
    align.add_argument("--no-output", action="store_true", help="theta and matrix only, no image")
    _common(align)
    align.set_defaults(run=run_align)

    rectify = subparsers.add_parser(
        "rectify",
        help="straighten a folder or glob of images",
        description="Rectify every image under INPUT (a folder, a file or a quoted glob) into "
        "OUTPUT_DIR over the streaming RPC (or --local), with a manifest.jsonl, resume on rerun, "
        "and a non-zero exit status if any file failed. Pages whose orientation the model was "
        "unsure of (--min-confidence) are left unturned and listed for review in the manifest "
        "and the summary.",
    )
    rectify.add_argument("input", help="folder (searched recursively), file, or quoted glob")
    rectify.add_argument("output_dir", help="where rectified images and manifest.jsonl go")
    rectify.add_argument(
        "--concurrency", type=_positive, default=8, help="files in flight (default 8)"
    )
    rectify.add_argument("--format", choices=("png", "jpeg"), default="png", help="output format")
    _common(rectify)
    rectify.set_defaults(run=run_rectify)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        action="append",
        default=None,
        help=CLIENT_HELP + " (default $STN_SERVER or localhost:50051)",
    )
    parser.add_argument(
        "--local", action="store_true", help="run the pipeline in this process, no server"
    )
    parser.add_argument(
        "--model", default="", help="model or '+'-joined chain (default: the server's)"
    )
    parser.add_argument(
        "--model-dir", default=None, help="with --local: model directory (default exported)"
    )
    parser.add_argument("--size", default="", help="output size HxW (default: the model's)")
    parser.add_argument("--jpeg-quality", type=int, default=95, help="JPEG quality 1-100")
    parser.add_argument(
        "--interpolation", default="linear",
        choices=("nearest", "linear", "cubic", "area", "lanczos4"),
        help="resampling for the rectified image (default linear)",
    )  # fmt: skip
    parser.add_argument(
        "--border", default="constant", choices=("constant", "replicate", "reflect", "wrap"),
        help="what fills pixels that fall outside the input (default constant, see --fill)",
    )  # fmt: skip
    parser.add_argument("--fill", type=float, default=255.0, help="border grey level (default 255)")
    parser.add_argument(
        "--min-confidence", type=_confidence, default=None, metavar="X",
        help="rotation models that report an orientation confidence: below X (0-1) a page is "
        "not turned by quarter turns (its skew is still corrected when that part is sure) and is "
        "listed for review (default: the server's min_orientation_confidence setting)",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds per call (default none)"
    )
    parser.add_argument("--token", default=None, help="shared token (default $STN_AUTH_TOKEN)")
    parser.add_argument("--tls-ca", default=None, help="PEM CA certificate: connect with TLS")
    parser.add_argument(
        "--max-message-mb", type=int, default=64, help="largest message sent or received, MiB"
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _confidence(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be 0..1, got {value}")
    return value


def _size(text: str) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--size: expected HxW such as 1100x850, got {text!r}") from None
    return h, w


def _servers(args) -> list[str]:
    given = args.server or [os.environ.get("STN_SERVER", "localhost:50051")]
    return [a.strip() for item in given for a in item.split(",") if a.strip()]


def _local_pipeline(args):
    from stn_align.service.config import ConfigError, load_config
    from stn_align.service.pipeline import Pipeline

    try:
        config = load_config()
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    return Pipeline.from_dir(args.model_dir or config.model_dir, config)


def _options(args, encoding: str):
    from stn_align.service.pipeline import AlignOptions

    return AlignOptions(
        models=[args.model] if args.model else None,
        out_hw=_size(args.size),
        encoding=encoding,
        jpeg_quality=args.jpeg_quality,
        interpolation=args.interpolation,
        border=args.border,
        fill=args.fill,
        min_confidence=args.min_confidence,
    )


def _client(args):
    from stn_align.service.client import AlignClient

    token = args.token if args.token is not None else os.environ.get("STN_AUTH_TOKEN", "")
    return AlignClient(_servers(args), token, args.tls_ca, args.max_message_mb, args.timeout)


def _catch_stop_signals() -> list[int]:
    """Note SIGTERM and SIGINT from now on; the server drains for them once it exists. Without
    this, a stop signal during the imports and model loading would kill the process outright."""
    caught: list[int] = []

    def note(signum, frame) -> None:
        caught.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, note)
    return caught


def run_serve(args) -> int:
    caught = _catch_stop_signals()  # first, before the heavy imports below
    from stn_align.service import logs
    from stn_align.service.config import ConfigError, load_config
    from stn_align.service.server import serve

    try:
        config = load_config(args=args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logs.configure(config.log_level, config.log_format)
    return serve(config, caught)


def _encoding_for(path: str | None) -> str:
    if not path:
        return "none"
    return "jpeg" if Path(path).suffix.lower() in (".jpg", ".jpeg") else "png"


def run_align(args) -> int:
    from google.protobuf.json_format import MessageToDict

    from stn_align.service.imageio import ImageError

    if args.no_output:
        args.output = None
    elif not args.output:
        args.output = f"{Path(args.image).stem}.rectified.png"
    encoding = _encoding_for(args.output)
    try:
        data = Path(args.image).read_bytes()
    except OSError as exc:
        print(f"error: cannot read {args.image}: {exc}", file=sys.stderr)
        return 1
    if args.local:
        from stn_align.service.pipeline import BadOptions, UnknownModel
        from stn_align.service.servicer import response_from

        pipeline = _local_pipeline(args)
        try:
            options = _options(args, encoding)
            response = response_from(
                Path(args.image).name, pipeline.align_bytes(data, options), options
            )
        except (ImageError, BadOptions, UnknownModel) as exc:
            print(f"error: {args.image}: {exc}", file=sys.stderr)
            return 1
        finally:
            pipeline.close()
    else:
        import grpc

        from stn_align.service.client import make_request

        o = _options(args, encoding)
        model = o.models[0] if o.models else None
        request = make_request(
            data, Path(args.image).name, model, o.out_hw, encoding, o.jpeg_quality,
            o.interpolation, o.border, o.fill, o.min_confidence,
        )  # fmt: skip
        with _client(args) as client:
            try:
                response = client.align(request)
            except grpc.RpcError as exc:
                print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
                return 1
    if args.output:
        from stn_align.service.rectify import atomic_write

        atomic_write(Path(args.output), response.rectified.data)
    out = MessageToDict(response, preserving_proto_field_name=True)
    out.pop("rectified", None)
    if args.output:
        out["output"] = args.output
    print(json.dumps(out, indent=2))
    return 0


def run_rectify(args) -> int:
    from tqdm import tqdm

    from stn_align.service import rectify

    out_dir = Path(args.output_dir)
    suffix = ".jpg" if args.format == "jpeg" else ".png"
    summary = rectify.Summary()
    try:
        jobs = rectify.plan(args.input, out_dir, suffix, summary)
    except (FileNotFoundError, rectify.UnsafePath) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not jobs:
        return rectify.report(summary, out_dir)
    options = _options(args, args.format)
    with tqdm(total=len(jobs), unit="img", desc="rectify", disable=None) as progress:
        recorder = rectify.Recorder(out_dir, summary, progress)
        try:
            if args.local:
                pipeline = _local_pipeline(args)
                try:
                    rectify.run_local(jobs, pipeline, options, recorder, args.concurrency)
                finally:
                    pipeline.close()
            else:
                from stn_align.service.client import make_request

                model = options.models[0] if options.models else None

                def request(data: bytes, request_id: str):
                    return make_request(data, request_id, model, options.out_hw, args.format,
                                        options.jpeg_quality, options.interpolation, options.border,
                                        options.fill, options.min_confidence)  # fmt: skip

                with _client(args) as client:
                    rectify.run_remote(jobs, client, request, recorder, args.concurrency)
        finally:
            recorder.close()
    return rectify.report(summary, out_dir)


def main(argv: list[str] | None = None) -> int:
    """The serving commands alone: `python -m stn_align.service.commands serve|align|rectify`. The
    container uses this, so a serving image needs none of the training commands' code."""
    parser = argparse.ArgumentParser(
        prog="stn", description="Serve and call the alignment service."
    )
    add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return run_command(parser, argv)


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse, run the chosen subcommand's handler, and turn Ctrl-C into exit status 130."""
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
