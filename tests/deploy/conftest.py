"""Fixtures for the deployment tests: the engine and images, built once per session."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import dockerlib  # noqa: E402


@pytest.fixture(scope="session")
def say(request):
    """Writes to the test report as it happens (sizes and timings worth seeing in CI)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def write(text: str) -> None:
        with capture.global_and_fixture_disabled():
            for line in text.splitlines():
                reporter.write_line(f"[docker] {line}")

    return write


@pytest.fixture(scope="session")
def docker(say) -> dockerlib.Docker:
    """A running engine, the base image, and this checkout's CPU and balancer images."""
    engine = dockerlib.start_docker(say)
    started = time.monotonic()
    build = dockerlib.Project(engine, "stn-build", ["cpu", "replicas-cpu"])
    build.run("build", "stn-cpu", "lb-cpu", timeout=900)
    image = engine.image("stn-align:cpu")
    size = int(dockerlib.inspect(image, "{{.Size}}"))
    say(
        f"built {image} ({size / 1e6:.0f} MB) and {engine.image('stn-align-lb:haproxy')} "
        f"from {engine.base} in {time.monotonic() - started:.0f} s with {' '.join(engine.compose)}"
    )
    return engine
