"""`stn align` and `stn rectify`: JSON output, manifest, errors, resume after an interrupted run."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from service_testlib import SlowSession, png

from stn_align.service import commands
from stn_align.service.rectify import MANIFEST, load_manifest, output_path
from stn_align.service.server import create_server

ROOT = Path(__file__).resolve().parents[2]


def stn(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="stn")
    commands.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.run(args)


def _folder(root: Path, n: int, corrupt: int = 0) -> list[str]:
    (root / "sub").mkdir(parents=True)
    names = []
    for i in range(n):
        name = f"sub/page {i:02d}.png" if i % 4 == 0 else f"page-{i:02d}.png"
        (root / name).write_bytes(png(100 + i, (40, 40 + i)))
        names.append(name)
    for i in range(corrupt):
        (root / f"bad-{i}.png").write_bytes(b"\x89PNG broken" * (i + 1))
        names.append(f"bad-{i}.png")
    (root / "notes.txt").write_text("not an image, not picked up")
    return names


def test_align_prints_json_and_writes_the_image(server, tmp_path, capsys):
    _, port = server
    src = tmp_path / "in.png"
    src.write_bytes(png(170, (50, 50)))
    out = tmp_path / "out.jpg"
    assert (
        stn("align", src, "-o", out, "--server", f"127.0.0.1:{port}", "--model", "doc-rotation")
        == 0
    )
    reply = json.loads(capsys.readouterr().out)
    assert reply["angle_degrees"] == pytest.approx(21.0, abs=1e-3)
    assert (
        len(reply["matrix"]) == 9 and len(reply["theta"]) == 2 and reply["timings"]["total_ms"] > 0
    )
    assert out.read_bytes()[:2] == b"\xff\xd8"  # a JPEG, by the suffix asked for
    assert stn("align", tmp_path / "missing.png", "--server", f"127.0.0.1:{port}") == 1


def test_align_local_and_bad_image(model_dir, tmp_path, capsys, monkeypatch):
    src = tmp_path / "in.png"
    src.write_bytes(png(170, (50, 50)))
    monkeypatch.chdir(tmp_path)
    assert stn("align", src, "--local", "--model-dir", model_dir, "--model", "doc-rotation") == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["angle_degrees"] == pytest.approx(21.0, abs=1e-3)
    assert reply["output"] == "in.rectified.png" and (tmp_path / "in.rectified.png").is_file()
    assert stn("align", src, "--local", "--model-dir", model_dir, "--no-output") == 0
    assert "output" not in json.loads(capsys.readouterr().out)
    src.write_bytes(b"nope")
    assert stn("align", src, "--local", "--model-dir", model_dir) == 1
    assert "cannot identify" in capsys.readouterr().err


def test_rectify_records_every_file_and_fails_on_errors(server, tmp_path, capsys):
    _, port = server
    names = _folder(tmp_path / "in", 9, corrupt=2)
    out = tmp_path / "out"
    status = stn(
        "rectify", tmp_path / "in", out, "--server", f"127.0.0.1:{port}", "--model", "doc-rotation"
    )
    assert status == 1
    manifest = load_manifest(out)
    assert set(manifest) == set(names)
    ok = [e for e in manifest.values() if e["status"] == "ok"]
    assert len(ok) == 9 and all((out / e["output"]).is_file() for e in ok)
    assert {e["input"] for e in manifest.values() if e["status"] == "error"} == {
        "bad-0.png",
        "bad-1.png",
    }
    assert all(len(e["matrix"]) == 9 and e["angle_degrees"] is not None for e in ok)
    assert (out / "sub" / "page 00.png").is_file()
    err = capsys.readouterr().err
    assert "11 images: 9 rectified, 0 already done, 2 failed" in err and "bad-0.png" in err


def test_rectify_local_over_a_glob(model_dir, tmp_path):
    _folder(tmp_path / "in", 5)
    out = tmp_path / "out"
    status = stn(
        "rectify",
        f"{tmp_path}/in/page-*.png",
        out,
        "--local",
        "--model-dir",
        model_dir,
        "--format",
        "jpeg",
    )
    assert status == 0
    assert sorted(p.name for p in out.glob("*.jpg")) == [
        "page-01.jpg",
        "page-02.jpg",
        "page-03.jpg",
    ]


def test_output_names_cannot_escape(tmp_path):
    root, out = tmp_path / "in", tmp_path / "out"
    assert output_path(root / "a" / "b.png", root, out, ".png") == out / "a" / "b.png"
    escaped = output_path(root / ".." / ".." / "etc" / "x.png", root, out, ".png")
    assert escaped.resolve().is_relative_to(out.resolve())
    assert output_path(root / ".hidden.png", root, out, ".png").name == "hidden.png"
    assert output_path(root / "we?rd*.png", root, out, ".png").name == "we_rd_.png"


def test_rectify_survives_a_replica_that_is_down(server, tmp_path):
    _, port = server
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # closed again at once: nothing listens there
    names = _folder(tmp_path / "in", 10)
    servers = f"127.0.0.1:{dead},127.0.0.1:{port}"
    out = tmp_path / "out"
    assert stn("rectify", tmp_path / "in", out, "--server", servers, "--model", "doc-rotation") == 0
    manifest = load_manifest(out)
    assert set(manifest) == set(names) and all(e["status"] == "ok" for e in manifest.values())


def test_rectify_round_robins_over_several_servers(base_config, tmp_path):
    a, port_a = create_server("127.0.0.1:0", base_config)
    b, port_b = create_server("127.0.0.1:0", base_config)
    try:
        _folder(tmp_path / "in", 12)
        servers = f"127.0.0.1:{port_a},127.0.0.1:{port_b}"
        assert (
            stn(
                "rectify",
                tmp_path / "in",
                tmp_path / "out",
                "--server",
                servers,
                "--model",
                "doc-rotation",
            )
            == 0
        )
        for handle in (a, b):
            text = generate_latest(handle.metrics.registry).decode()
            assert 'stn_stream_items_total{code="OK"}' in text  # each replica did some of the work
    finally:
        a.drain(0, 0)
        b.drain(0, 0)


def test_rectify_resumes_after_an_interrupted_run(base_config, tmp_path):
    handle, port = create_server("127.0.0.1:0", base_config.replace(max_batch_size=1))
    model = handle.pipeline.models["doc-rotation"]
    model.session = SlowSession(model.session, 0.25)
    names = _folder(tmp_path / "in", 16)
    out = tmp_path / "out"
    argv = ["rectify", str(tmp_path / "in"), str(out), "--server", f"127.0.0.1:{port}", "--model",
            "doc-rotation", "--concurrency", "1"]  # fmt: skip
    # A shell that starts the tests in the background ignores SIGINT, and a child inherits an
    # ignored signal; with a handler set here the child starts with the default (Ctrl-C) instead.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "stn_align.service.commands", *argv],
                cwd=ROOT,
                stderr=subprocess.PIPE,
            )
        finally:
            signal.signal(signal.SIGINT, previous)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (out / MANIFEST).exists() and len((out / MANIFEST).read_text().splitlines()) >= 4:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130 and b"interrupted" in err
        first = load_manifest(out)
        assert 4 <= len(first) < len(names), "the first run was not cut short"
        assert all(e["status"] == "ok" for e in first.values())
        damaged = out / next(iter(first.values()))["output"]
        damaged.write_bytes(b"half a file")  # verification must catch this and redo it
        model.session = model.session.session  # full speed for the rerun
        assert stn(*argv) == 0
        final = load_manifest(out)
        assert set(final) == set(names) and all(e["status"] == "ok" for e in final.values())
        lines = (out / MANIFEST).read_text().splitlines()
        assert (
            len(lines) == len(first) + (len(names) - len(first)) + 1
        )  # only the rest + the damaged one
        assert not list(out.rglob(".*.tmp-*"))
        assert damaged.read_bytes()[:4] == b"\x89PNG"
        os.utime(tmp_path / "in" / names[1])  # a touched source is redone
        assert stn(*argv) == 0
        assert len((out / MANIFEST).read_text().splitlines()) == len(lines) + 1
    finally:
        handle.drain(0, 0)


def test_serve_fails_start_up_when_the_gpu_is_required_but_absent(model_dir):
    from stn_align.service.models import CUDA, load_repository

    if load_repository(model_dir, ["doc-rotation"], "auto")["doc-rotation"].provider == CUDA:
        pytest.skip("CUDA binds here, so require_gpu cannot fail")
    env = {**os.environ, "STN_MODEL_DIR": str(model_dir), "STN_ADDRESS": "127.0.0.1:0",
           "STN_METRICS_PORT": "0", "STN_REQUIRE_GPU": "true"}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "stn_align.service.commands", "serve"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1
    failure = [json.loads(line) for line in out.stderr.splitlines() if '"start-up failed"' in line]
    assert failure and "require_gpu" in failure[0]["exception"]
