"""`stn bench paper`: the paper-reproduction benchmark on cluttered MNIST (table and figures).

Torch is imported inside the handler so `stn --help` stays quick.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def markers(tag: str) -> tuple[str, str]:
    name = f"bench-paper-{tag}" if tag else "bench-paper"
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def add_commands(subparsers) -> None:
    bench = subparsers.add_parser(
        "bench",
        help="run a benchmark",
        description="Benchmarks. 'paper' reproduces the STN paper's cluttered-MNIST comparison: "
        "CNN and FCN baselines vs ST-CNNs, over seeds, with follow-up experiments.",
    )
    bench.add_argument("name", choices=["paper"], help="which benchmark to run")
    bench.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="seeds per model (0..N-1); mean and std are over these (default 3)",
    )
    bench.add_argument(
        "--followup-seeds",
        type=int,
        default=0,
        help="seeds per follow-up experiment (rotation, init, 2xST); 0: the same as --seeds",
    )
    bench.add_argument(
        "--steps",
        type=int,
        default=200,
        help="training steps of batch 64 per run, the same for every model",
    )
    bench.add_argument(
        "--smoke",
        action="store_true",
        help="a seconds-long check of the whole path: 2 seeds x 1 step of batch 16, "
        "32 val and test digits; its numbers mean nothing",
    )
    bench.add_argument(
        "--out",
        default="runs/paper",
        help="folder for checkpoints, metrics and results.json; finished runs with "
        "the same settings are reused, so an interrupted bench resumes",
    )
    bench.add_argument(
        "--report",
        default="docs",
        help="folder for paper-benchmark.md (its generated block is replaced) and "
        "figures/paper/*.png",
    )
    bench.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    bench.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads (0: torch's default)"
    )
    bench.add_argument(
        "--only",
        default="",
        help="comma-separated experiment names to run (default: all), e.g. cnn,st-affine",
    )
    bench.add_argument(
        "--skip-followups",
        action="store_true",
        help="only the main table: no rotation, init or 2xST experiments",
    )
    bench.add_argument(
        "--out-size",
        type=int,
        default=20,
        help="side of the transformer's output, in pixels (the input is 40)",
    )
    bench.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra training override for every run, e.g. --set localiser_lr=1e-3",
    )
    bench.add_argument(
        "--tag",
        default="",
        help="name of this invocation's block in the report and of its figure subfolder, so "
        "several invocations (e.g. a longer budget) can fill one report",
    )
    bench.set_defaults(run=run)


def update_report(path: Path, block: str, tag: str = "") -> None:
    """Replace the generated block of the report, keeping the hand-written text around it."""
    start, end = markers(tag)
    generated = f"{start}\n{block}{end}\n\n"
    if path.is_file():
        text = path.read_text()
        if start in text and end in text:
            head, rest = text.split(start, 1)
            path.write_text(head + generated + rest.split(end, 1)[1].lstrip("\n"))
            return
        path.write_text(text.rstrip("\n") + "\n\n" + generated)
        return
    path.write_text("# Paper benchmark: cluttered MNIST\n\n" + generated)


def run(args: argparse.Namespace) -> int:
    import torch

    from stn_align.experiments.paper.benchmark import run_benchmark, tables
    from stn_align.experiments.paper.figures import make_figures
    from stn_align.training.config import ConfigError

    if args.threads:
        torch.set_num_threads(args.threads)
    seeds, steps, extra, test_limit = args.seeds, args.steps, list(args.set), 0
    if args.smoke:
        seeds, steps, test_limit = 2, 1, 32
        extra += ["data.val_size=32", "batch_size=16", "warmup_steps=1"]
    if seeds < 1 or steps < 1:
        print("--seeds and --steps must be at least 1", file=sys.stderr)
        return 2
    groups = {"main"} if args.skip_followups else {"main", "rotation", "init", "double"}
    only = {n.strip() for n in args.only.split(",") if n.strip()} or None
    out, report = Path(args.out), Path(args.report)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        summaries = run_benchmark(
            seeds,
            steps,
            out,
            args.device,
            groups,
            only,
            extra,
            args.out_size,
            test_limit,
            args.followup_seeds,
        )
    except (ConfigError, FileNotFoundError, ValueError) as err:
        print(f"stn bench paper: {err}", file=sys.stderr)
        return 2
    train_s = sum(r["wall_s"] for s in summaries for r in s.results)
    report.mkdir(parents=True, exist_ok=True)
    fig_rel = "figures/paper" + (f"/{args.tag}" if args.tag else "")
    figures = make_figures(summaries, out, report / fig_rel)
    wall = time.perf_counter() - t0
    command = (
        "stn bench paper " + " ".join(a for a in sys.argv[3:] if a)
        if sys.argv[1:3] == ["bench", "paper"]
        else "stn bench paper"
    )
    links = "\n".join(f"![{p.stem}]({fig_rel}/{p.name})" for p in figures)
    block = (
        f"Made by `{command}` ({seeds} seeds, "
        f"{'' if args.skip_followups else f'{args.followup_seeds or seeds} for follow-ups, '}"
        f"{steps} steps per run, "
        f"threads={torch.get_num_threads()}). The runs' own wall times (training and test, "
        f"measured when each was trained) add up to {train_s / 60:.1f} min; this invocation "
        f"took {wall / 60:.1f} min, as finished runs are reused. Test error on the 1000 test "
        f"digits"
        f"{' (smoke: first 32)' if args.smoke else ''}.\n\n"
        f"{tables(summaries)}\n{links}\n"
    )
    update_report(report / "paper-benchmark.md", block, args.tag)
    print(tables(summaries))
    print(f"wrote {report / 'paper-benchmark.md'} and {len(figures)} figures; {wall / 60:.1f} min")
    return 0
