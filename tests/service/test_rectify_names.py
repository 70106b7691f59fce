"""`stn rectify` output names: no two inputs share an output, reruns settle, and an output folder
inside the input folder is not read back as input (issue 19, item 2)."""

from __future__ import annotations

import argparse
import hashlib
import re

import pytest
from service_testlib import png

from stn_align.service import commands
from stn_align.service.rectify import load_manifest

SUMMARY = re.compile(r"(\d+) images: (\d+) rectified, (\d+) already done, (\d+) failed")


def stn(*argv) -> int:
    parser = argparse.ArgumentParser(prog="stn")
    commands.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.run(args)


def _summary(capsys) -> tuple[int, ...]:
    match = SUMMARY.search(capsys.readouterr().err)
    assert match, "no summary line"
    return tuple(int(v) for v in match.groups())


@pytest.fixture(autouse=True)
def _no_warmup(monkeypatch):
    monkeypatch.setenv("STN_WARMUP_RUNS", "0")  # --local loads the models on every run
    monkeypatch.setenv("STN_DEVICE", "cpu")


def _rectify(src, out, model_dir) -> int:
    return stn("rectify", src, out, "--local", "--model-dir", model_dir, "--model", "doc-rotation")


COLLIDING = ["ü.png", "é.png", "twin.png", "twin.jpg", "a?.png", "a*.png", "Case.png", "case.png"]


def test_inputs_whose_names_meet_get_outputs_of_their_own(model_dir, tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i, name in enumerate(COLLIDING):
        (src / name).write_bytes(png(100 + 10 * i, (40, 40 + i)))
    assert _rectify(src, out, model_dir) == 0
    assert _summary(capsys) == (8, 8, 0, 0)
    manifest = load_manifest(out)
    assert set(manifest) == set(COLLIDING)
    outputs = [entry["output"] for entry in manifest.values()]
    assert len({o.casefold() for o in outputs}) == 8, outputs
    for entry in manifest.values():  # every output is the one its manifest line describes
        assert hashlib.sha256((out / entry["output"]).read_bytes()).hexdigest() == entry["sha256"]
    assert manifest["ü.png"]["output"] == "ü.png"  # letters of any script are kept
    for _ in range(2):  # reruns settle: nothing redone, nothing renamed
        assert _rectify(src, out, model_dir) == 0
        assert _summary(capsys) == (8, 0, 8, 0)
        assert {k: e["output"] for k, e in load_manifest(out).items()} == {
            k: e["output"] for k, e in manifest.items()
        }


def test_an_output_folder_inside_the_input_folder_is_not_read_back(model_dir, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        (src / f"page-{i}.png").write_bytes(png(120 + i, (40, 40)))
    out = src / "rectified"
    assert _rectify(src, out, model_dir) == 0
    assert _summary(capsys) == (3, 3, 0, 0)
    assert _rectify(src, out, model_dir) == 0
    assert _summary(capsys) == (3, 0, 3, 0)
    assert not (out / "rectified").exists()


def test_an_output_folder_that_holds_the_input_is_refused(model_dir, tmp_path, capsys):
    src = tmp_path / "out" / "in"
    src.mkdir(parents=True)
    (src / "page.png").write_bytes(png(120, (40, 40)))
    assert _rectify(src, tmp_path / "out", model_dir) == 2
    assert "choose another output folder" in capsys.readouterr().err
