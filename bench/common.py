"""What the benchmark scripts share: their argument parser, timers, ONNX Runtime CPU sessions, the
1-megapixel test pages, concurrent calls, the machine's description, markdown tables and the
sections they write into BENCHMARKS.md.

The scripts run from the repository root as `python -m bench.NAME`; nothing here edits sys.path.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import socket
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "BENCHMARKS.md"
DOCUMENTS = ROOT.parent / "shared" / "data" / "documents"  # the shared real pages, if present
PAGES = ROOT.parent / "shared" / "data" / "pages"  # the real page bank (training and validation)
THROUGHPUT_PAGE = DOCUMENTS / "cardinal-1.png"


def argument_parser(script: str, doc: str | None) -> argparse.ArgumentParser:
    """A parser whose usage line reads `python -m bench.NAME` for the script file `script`
    (pass `__file__`), described by the first paragraph of its docstring."""
    name = Path(script).stem
    description = (doc or "").strip().split("\n\n")[0]
    return argparse.ArgumentParser(prog=f"python -m bench.{name}", description=description)


def call_seconds(fn: Callable[..., object], calls: int, warmup: int = 1) -> list[float]:
    """Seconds each of `calls` calls of `fn` took, after `warmup` untimed calls (the first calls
    allocate and pick kernels)."""
    for _ in range(warmup):
        fn()
    spent = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        spent.append(time.perf_counter() - start)
    return spent


def median_ms(fn: Callable[..., object], calls: int, warmup: int = 1) -> float:
    """Median milliseconds of a call of `fn` over `calls` timed calls."""
    return statistics.median(call_seconds(fn, calls, warmup)) * 1000


def cpu_options(threads: int) -> ort.SessionOptions:
    """ONNX Runtime session options: `threads` intra-op threads, errors-only logging."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return options


def cpu_session(
    model: str | bytes, threads: int, options: ort.SessionOptions | None = None
) -> ort.InferenceSession:
    """An ONNX Runtime session on the CPU provider for a model file or serialised model, with
    `cpu_options(threads)` unless `options` are given."""
    options = options or cpu_options(threads)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def alternate(runs: Sequence[tuple[Any, dict]], rounds: int, calls: int) -> list[list[float]]:
    """(session, feed) pairs timed in turn, `calls` calls each a round -> per pair, the mean ms a
    call of each round. Taking turns makes a busy or throttled machine weigh on all alike."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for spent, (session, feed) in zip(times, runs, strict=True):
            start = time.perf_counter()
            for _ in range(calls):
                session.run(None, feed)
            spent.append((time.perf_counter() - start) / calls * 1000)
    return times


def read_rgb(path: Path) -> np.ndarray:
    """An image file as RGB uint8; a clear error when it cannot be read."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read the image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def to_megapixel(image: np.ndarray) -> np.ndarray:
    """`image` scaled, aspect kept, to about one million pixels."""
    scale = (1_000_000 / (image.shape[0] * image.shape[1])) ** 0.5
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def striped_page() -> np.ndarray:
    """A synthetic text-like 866 x 1155 RGB page (dark noisy rows on light paper); needs no fonts
    and no training package."""
    rng = np.random.default_rng(0)
    page = np.full((1155, 866, 3), 245, np.uint8)
    for y in range(80, 1080, 28):
        page[y : y + 10, 70:800] = rng.integers(0, 90, (10, 730, 3), dtype=np.uint8)
    return page


def document_pages(count: int) -> list[np.ndarray]:
    """Up to `count` of the shared real pages, each at about one megapixel, RGB; the striped page
    when the shared data is absent."""
    files = sorted(DOCUMENTS.glob("*.png"))[:count]
    return [to_megapixel(read_rgb(f)) for f in files] or [striped_page()]


def turned_page() -> np.ndarray:
    """The throughput page: a real page (a rendered synthetic one when the shared data is absent)
    at 1 MP, turned by 7 degrees on an expanded canvas so that the warp does real work, and brought
    back to about 1 MP."""
    # The training package draws and turns the page; it is not part of the serving install, and
    # only the scripts that time a whole page need it.
    from stn_align.training.documents.synth import rotate_expand

    if THROUGHPUT_PAGE.is_file():
        page = read_rgb(THROUGHPUT_PAGE)
    else:
        from stn_align.training.documents.layout import render_page

        page = np.repeat(render_page(0)[:, :, None], 3, axis=2)
    return to_megapixel(rotate_expand(to_megapixel(page), 7.0, 255))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def concurrent_calls(
    call: Callable[[Any], object], payloads: Sequence[Any], concurrency: int, total: int
) -> tuple[float, list[float]]:
    """`total` calls of `call` on the payloads in turn from `concurrency` threads, after one
    untimed call per thread (threads and connections warm) -> (calls/s, each call's ms)."""
    latencies: list[float] = []

    def one(i: int) -> None:
        started = time.perf_counter()
        call(payloads[i % len(payloads)])
        latencies.append((time.perf_counter() - started) * 1000)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(concurrency)))
        latencies.clear()
        started = time.perf_counter()
        list(pool.map(one, range(total)))
        wall = time.perf_counter() - started
    return total / wall, latencies


def cpu_name() -> str:
    """The processor's model name from /proc/cpuinfo, else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def machine() -> str:
    """The machine in a few words, for a benchmark's report."""
    return f"{os.cpu_count()} CPU cores ({cpu_name()}), Python {platform.python_version()}"


def utc_now() -> str:
    """The time now, as a benchmark's report dates itself."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str) -> str:
    """A markdown table; `align` has one letter a column: l (left) or r (right)."""
    rule = {"l": "---", "r": "---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule[a] for a in align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(section: str, parent: str | None = None, path: Path = BENCHMARKS) -> None:
    """Put `section`, which starts with its heading line, into BENCHMARKS.md. An existing copy is
    replaced up to the next heading of any level, so a script's text replaces only its own. A new
    one goes at the end of the `parent` section (its heading line, added when missing) when one is
    given, else at the end of the file."""
    heading = section.splitlines()[0]
    section = section.rstrip() + "\n"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find(heading + "\n")
    if start < 0 and parent is not None and parent + "\n" not in text:
        text = text.rstrip() + "\n\n" + parent + "\n"
    if start >= 0:
        end = _next_heading(text, start + 1, 6)
        text = text[:start] + section + ("\n" if end < len(text) else "") + text[end:]
    elif parent is not None:
        end = _next_heading(text, text.find(parent + "\n") + 1, len(parent.split(" ", 1)[0]))
        text = (
            text[:end].rstrip() + "\n\n" + section + ("\n" if end < len(text) else "") + text[end:]
        )
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n")


def _next_heading(text: str, start: int, level: int) -> int:
    """Where the first heading of `level` or a higher rank (fewer #) after `start` begins, or the
    end of the text."""
    found = re.compile(rf"^#{{1,{level}}} ", re.MULTILINE).search(text, start)
    return found.start() if found else len(text)
