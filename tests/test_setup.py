"""scripts/setup.sh installs the data-drawing libraries at the versions scripts/constraints.txt
pins, so a rebuild on a fresh machine draws the same training data."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

CONSTRAINTS = Path(__file__).resolve().parents[1] / "scripts" / "constraints.txt"


def pinned() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, wanted = line.partition("==")
            pins[name] = wanted
    return pins


def test_constraints_pin_each_library_to_one_version():
    pins = pinned()
    assert set(pins) == {"numpy", "opencv-python-headless", "pillow"}
    assert all(wanted and "," not in wanted for wanted in pins.values())


def test_the_environment_has_the_pinned_versions():
    found = {name: version(name) for name in pinned()}
    assert found == pinned()


def test_setup_installs_with_the_constraints():
    setup = (CONSTRAINTS.parent / "setup.sh").read_text()
    assert "-c scripts/constraints.txt" in setup
