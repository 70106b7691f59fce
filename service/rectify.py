"""`stn rectify`: straighten a folder (or glob) of images into OUTPUT_DIR.

- Work goes over the AlignStream RPC (one stream per server address, files dealt out in turn), or
  in-process with --local; at most `concurrency` files are in flight.
- Each output is written to a temporary file and renamed, then a line is appended to
  OUTPUT_DIR/manifest.jsonl (theta, matrix, angle, corners, the orientation and skew confidences,
  whether the page was read a second time and whether it was held for review, the output's
  sha256, the source's size and mtime).
- Pages the model was unsure of (orientation confidence under the threshold: AlignRequest's
  min_confidence, `--min-confidence`) come back unturned; their lines say `"review": true` and the
  summary lists them.
- Rerunning skips a file when its last manifest line says ok, the output exists with that sha256,
  and the source is unchanged. So an interrupted run resumes where it stopped.
- Files refused for overload or lost with a broken stream (a replica going away) are retried in
  later passes. A failed file gets an error line in the manifest and a line in the summary; the
  batch goes on and the exit status is 1.
- Output paths mirror the inputs' relative paths, cleaned so they cannot leave OUTPUT_DIR. Two
  inputs never share an output: when cleaning or the new suffix makes names meet (`twin.png` and
  `twin.jpg`; names that differ only in case, for case-blind file systems), the later one gets a
  name with a short hash of its input path. Files already done keep their outputs, so a rerun
  gives every file the name it had. Files under OUTPUT_DIR are never taken as inputs.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import queue
import re
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from stn_align.service.proto import alignment_pb2 as pb

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}
MANIFEST = "manifest.jsonl"
_UNSAFE = re.compile(r"[^\w. -]")  # \w: letters and digits of any script, and "_"


class UnsafePath(ValueError):
    pass


def list_inputs(spec: str) -> tuple[Path, list[Path]]:
    """A directory (recursively), one file, or a glob -> (root, sorted image files)."""
    path = Path(spec)
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        return path, sorted(files)
    if path.is_file():
        return path.parent, [path]
    files = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
    files = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise FileNotFoundError(f"no images match {spec}")
    root = Path(os.path.commonpath([str(p.parent.absolute()) for p in files]))
    return root, files


def output_path(source: Path, root: Path, out_dir: Path, suffix: str) -> Path:
    """OUTPUT_DIR / the source's path relative to root, with unsafe parts cleaned away."""
    rel = unicodedata.normalize("NFC", os.path.relpath(source.absolute(), root.absolute()))
    parts = [_UNSAFE.sub("_", p) for p in Path(rel).parts if p not in ("", ".", "..", os.sep)]
    parts = [p.lstrip(".") or "_" for p in parts]  # no hidden files, no "." tricks
    if not parts:
        raise UnsafePath(f"no usable output name for {source}")
    dest = (out_dir / Path(*parts)).with_suffix(suffix)
    if not dest.resolve().is_relative_to(out_dir.resolve()):
        raise UnsafePath(f"output for {source} would leave {out_dir}")
    return dest


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(dest: Path, data: bytes) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, dest)


def load_manifest(out_dir: Path) -> dict[str, dict]:
    """The last line per input; unreadable lines (a crash mid-write) are ignored."""
    entries: dict[str, dict] = {}
    path = out_dir / MANIFEST
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
                entries[entry["input"]] = entry
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return entries


def is_done(entry: dict | None, source: Path, out_dir: Path) -> bool:
    if not entry or entry.get("status") != "ok":
        return False
    stat = source.stat()
    if (
        entry.get("source_bytes") != stat.st_size
        or entry.get("source_mtime_ns") != stat.st_mtime_ns
    ):
        return False
    out = out_dir / entry["output"]
    return out.is_file() and sha256(out) == entry.get("sha256")


@dataclass
class Summary:
    total: int = 0
    skipped: int = 0
    done: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    review: list[tuple[str, float]] = field(default_factory=list)  # (input, confidence)


@dataclass
class Job:
    source: Path
    key: str  # input path relative to root, the manifest key and request id
    dest: Path


class Recorder:
    """Writes outputs and manifest lines; called from several threads."""

    def __init__(self, out_dir: Path, summary: Summary, progress) -> None:
        self.out_dir = out_dir
        self.summary = summary
        self.progress = progress
        self._lock = threading.Lock()
        self._manifest = open(out_dir / MANIFEST, "a")  # noqa: SIM115 - closed in close()
        self.recorded: set[str] = set()

    def _append(self, entry: dict) -> None:
        with self._lock:
            self.recorded.add(entry["input"])
            self._manifest.write(json.dumps(entry) + "\n")
            self._manifest.flush()
            self.progress.update(1)

    def error(self, job: Job, code: str, message: str) -> None:
        with self._lock:
            self.summary.failed.append((job.key, f"{code}: {message}"))
        self._append({"input": job.key, "status": "error", "code": code, "message": message})

    def result(self, job: Job, response: pb.AlignResponse) -> None:
        try:
            atomic_write(job.dest, response.rectified.data)
        except OSError as exc:
            self.error(job, "WRITE_FAILED", str(exc))
            return
        stat = job.source.stat()
        entry = {
            "input": job.key,
            "status": "ok",
            "output": job.dest.relative_to(self.out_dir).as_posix(),
            "sha256": hashlib.sha256(response.rectified.data).hexdigest(),
            "source_bytes": stat.st_size,
            "source_mtime_ns": stat.st_mtime_ns,
            "model": response.model,
            "family": response.family,
            "theta": list(response.theta),
            "matrix": list(response.matrix),
            "angle_degrees": response.angle_degrees if response.HasField("angle_degrees") else None,
            "page_corners": [[p.x, p.y] for p in response.page_corners] or None,
            "size": [response.rectified.height, response.rectified.width],
            "orientation_confidence": _optional(response, "orientation_confidence"),
            "skew_confidence": _optional(response, "skew_confidence"),
            "review": response.review,
            "read_again": any(stage.read_again for stage in response.stages),
        }
        with self._lock:
            self.summary.done += 1
            if response.review:
                self.summary.review.append((job.key, response.orientation_confidence))
        self._append(entry)

    def close(self) -> None:
        self._manifest.close()


def _name_key(relative: str) -> str:
    """Output names that one file system may take for the same file (case-blind ones)."""
    return unicodedata.normalize("NFC", relative).casefold()


def _distinct(dest: Path, key: str, out_dir: Path, taken: set[str]) -> Path:
    """dest, or when another input has that name, dest with a hash of this input's path."""
    digest = hashlib.sha256(key.encode()).hexdigest()
    candidates = [dest] + [
        dest.with_name(f"{dest.stem}~{digest[:length]}{dest.suffix}") for length in (8, 16, 64)
    ]
    for candidate in candidates:
        if _name_key(candidate.relative_to(out_dir).as_posix()) not in taken:
            return candidate
    raise UnsafePath(f"no free output name for {key}")


def _optional(message, name: str) -> float | None:
    return round(float(getattr(message, name)), 4) if message.HasField(name) else None


def plan(input_spec: str, out_dir: Path, suffix: str, summary: Summary) -> list[Job]:
    root, files = list_inputs(input_spec)
    out_abs = out_dir.resolve()
    if root.resolve().is_relative_to(out_abs):
        raise UnsafePath(
            f"the output folder {out_dir} holds the input {input_spec}; choose another output "
            "folder"
        )
    files = [f for f in files if not f.resolve().is_relative_to(out_abs)]  # our own outputs
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.rglob(".*.tmp-*"):  # left by an interrupted run
        stale.unlink(missing_ok=True)
    manifest = load_manifest(out_dir)
    summary.total = len(files)
    keyed = [(f, Path(os.path.relpath(f.absolute(), root.absolute())).as_posix()) for f in files]
    taken: set[str] = set()
    todo = []
    for source, key in keyed:  # files done keep their outputs
        entry = manifest.get(key)
        if entry and is_done(entry, source, out_dir) and _name_key(entry["output"]) not in taken:
            taken.add(_name_key(entry["output"]))
            summary.skipped += 1
        else:
            todo.append((source, key))
    jobs = []
    for source, key in todo:
        dest = _distinct(output_path(source, root, out_dir, suffix), key, out_dir, taken)
        taken.add(_name_key(dest.relative_to(out_dir).as_posix()))
        jobs.append(Job(source, key, dest))
    return jobs


RETRYABLE = {"RESOURCE_EXHAUSTED", "UNAVAILABLE"}


def run_remote(
    jobs: list[Job],
    client,
    make_request: Callable,
    recorder: Recorder,
    concurrency: int,
    attempts: int = 3,
    backoff_s: float = 1.0,
) -> None:
    """Send the jobs over one AlignStream per server. Files refused for overload
    (RESOURCE_EXHAUSTED) or lost with a broken stream (a replica going away) are retried in a later
    pass, up to `attempts` passes; then they are recorded as failed."""
    pending, stubs = list(jobs), list(client.stubs)
    for attempt in range(attempts):
        last = attempt + 1 == attempts
        pending, broken = _one_pass(
            pending, client, stubs, make_request, recorder, concurrency, not last
        )
        if not pending:
            return
        # leave out servers whose stream broke, as long as another one worked
        stubs = [s for s in stubs if s not in broken] or stubs
        time.sleep(backoff_s * (attempt + 1))


def _one_pass(jobs, client, stubs, make_request, recorder: Recorder, concurrency: int, may_retry):
    slots = threading.Semaphore(concurrency)  # files in flight over all streams
    by_id = {job.key: job for job in jobs}
    work: queue.Queue[Job | None] = queue.Queue()
    for job in jobs:
        work.put(job)
    for _ in stubs:
        work.put(None)  # one end marker per stream
    retry: list[Job] = []
    errors: list[BaseException] = []
    broken: list = []

    def requests(in_flight: set[str]) -> Iterator[pb.AlignRequest]:
        while (job := work.get()) is not None:
            slots.acquire()
            try:
                data = job.source.read_bytes()
            except OSError as exc:
                slots.release()
                recorder.error(job, "READ_FAILED", str(exc))
                continue
            in_flight.add(job.key)
            yield make_request(data, request_id=job.key)

    def one_stream(stub) -> None:
        in_flight: set[str] = set()
        try:
            for item in client.align_stream(requests(in_flight), stub=stub):
                in_flight.discard(item.id)
                slots.release()
                job = by_id[item.id]
                if not item.HasField("error"):
                    recorder.result(job, item.result)
                elif may_retry and item.error.code_name in RETRYABLE:
                    retry.append(job)
                else:
                    recorder.error(job, item.error.code_name, item.error.message)
        except Exception as exc:  # the stream broke (server gone): free what it held
            errors.append(exc)
            broken.append(stub)
            for _ in range(len(in_flight)):
                slots.release()

    threads = [threading.Thread(target=one_stream, args=(s,), daemon=True) for s in stubs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    retrying = {job.key for job in retry}
    for job in jobs:  # in flight on a stream that broke, or never sent
        if job.key in recorder.recorded or job.key in retrying:
            continue
        if may_retry:
            retry.append(job)
        else:
            reason = f"stream failed: {_describe(errors[0])}" if errors else "not processed"
            recorder.error(job, "UNAVAILABLE", reason)
    return retry, broken


def _describe(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    if callable(code):  # grpc.RpcError
        return f"{code().name}: {exc.details()}"  # type: ignore[attr-defined]
    return str(exc)


def run_local(jobs: list[Job], pipeline, options, recorder: Recorder, concurrency: int) -> None:
    from stn_align.service.servicer import response_from, status_for

    def one(job: Job) -> None:
        try:
            result = pipeline.align_bytes(job.source.read_bytes(), options)
        except Exception as exc:
            code, message = status_for(exc)
            recorder.error(job, code.name, message)
            return
        recorder.result(job, response_from(job.key, result, options))

    pool = ThreadPoolExecutor(max_workers=concurrency)
    try:
        for future in [pool.submit(one, job) for job in jobs]:
            future.result()
    finally:
        # on Ctrl-C, drop the files not started; the ones running finish and are recorded
        pool.shutdown(wait=True, cancel_futures=True)


def report(summary: Summary, out_dir: Path, stream=None) -> int:
    stream = stream or sys.stderr
    print(
        f"{summary.total} images: {summary.done} rectified, {summary.skipped} already done, "
        f"{len(summary.failed)} failed; manifest {out_dir / MANIFEST}",
        file=stream,
    )
    for key, message in summary.failed[:20]:
        print(f"  failed {key}: {message}", file=stream)
    if len(summary.failed) > 20:
        print(f"  ... and {len(summary.failed) - 20} more (see the manifest)", file=stream)
    if summary.review:
        print(
            f"{len(summary.review)} left unturned for review (orientation unsure; "
            '"review": true in the manifest):',
            file=stream,
        )
        for key, confidence in sorted(summary.review)[:20]:
            print(f"  review {key}: orientation confidence {confidence:.2f}", file=stream)
        if len(summary.review) > 20:
            print(f"  ... and {len(summary.review) - 20} more", file=stream)
    return 1 if summary.failed else 0
