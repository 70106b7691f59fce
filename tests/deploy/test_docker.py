"""The deployment, built and run for real: the CPU image from the Dockerfile, docker-compose.yml's
CPU service (healthy, serving through a loopback port, draining on `compose down`) and its
replicas-cpu profile (three replicas behind HAProxy: calls spread over all three, and one replica
stopped under load without a failed call). Skipped only where no Docker engine can run."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import threading
import time
from subprocess import PIPE

import cv2
import grpc
import numpy as np
import pytest
from dockerlib import (
    Docker,
    Project,
    free_port,
    haproxy_servers,
    inspect,
    retrying_stub,
    run,
    wait_healthy,
)

from stn_align.service.client import make_request, rectified_array
from stn_align.service.config import ServiceConfig
from stn_align.service.pipeline import AlignOptions, Pipeline
from stn_align.service.proto import alignment_pb2 as pb
from stn_align.training.documents.layout import render_page
from stn_align.training.documents.synth import rotate_expand

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def page() -> np.ndarray:
    """A synthetic document page turned by 6 degrees, RGB."""
    grey = rotate_expand(render_page(41), 6.0, 255)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()


def test_image_runs_as_non_root_without_torch_or_training_code(docker: Docker):
    image = docker.image("stn-align:cpu")
    assert inspect(image, "{{.Config.User}}") == "10001:10001"
    probe = (
        "import importlib.util as u, json, os, pathlib, stn_align.service.server as s;"
        "site = pathlib.Path(s.__file__).parents[1];"
        "print(json.dumps({'uid': os.getuid(), 'torch': u.find_spec('torch') is not None,"
        "'packages': sorted(p.name for p in site.iterdir() if p.is_dir()),"
        "'training': u.find_spec('stn_align.training') is not None}))"
    )
    out = run(["docker", "run", "--rm", "--entrypoint", "python", image, "-c", probe])
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["uid"] == 10001
    assert not found["torch"] and not found["training"]
    assert set(found["packages"]) - {"__pycache__"} == {"core", "service"}


@pytest.fixture(scope="module")
def single(docker: Docker):
    """The CPU service of docker-compose.yml, up and healthy, on loopback ports."""
    grpc_port, metrics_port = free_port(), free_port()
    project = Project(
        docker,
        f"stn-single-{os.getpid()}",
        ["cpu"],
        {"STN_PUBLISH_GRPC_PORT": str(grpc_port), "STN_PUBLISH_METRICS_PORT": str(metrics_port)},
    )
    started = time.monotonic()
    try:
        project.run("up", "-d", "--no-build", "stn-cpu")
        (container,) = project.containers("stn-cpu")
        wait_healthy([container])
        docker.say(f"stn-cpu healthy {time.monotonic() - started:.0f} s after `up`")
        yield project, container, grpc_port
    finally:
        project.down()


def test_cpu_service_is_healthy_and_aligns_through_the_published_port(single, page):
    project, container, port = single
    mounts = json.loads(inspect(container, "{{json .Mounts}}"))
    (models,) = [m for m in mounts if m["Destination"] == "/models"]
    assert models["RW"] is False  # the read-only model mount
    channel, stub = retrying_stub(f"127.0.0.1:{port}")
    with channel:
        request = make_request(_png(page), model="doc-rotation", encoding="png")
        reply = stub.Align(request, timeout=60)
    served = rectified_array(reply)
    # The same models in-process give the same answer: the container serves what was shipped.
    local = Pipeline.from_dir("exported", ServiceConfig(device="cpu", warmup_runs=0))
    try:
        expected = local.align(page, AlignOptions(models=["doc-rotation"], encoding="raw"))
    finally:
        local.close()
    assert reply.angle_degrees == pytest.approx(expected.angle, abs=0.01)
    assert served.shape == expected.rectified.shape
    assert np.abs(served.astype(int) - expected.rectified.astype(int)).mean() < 1.0
    assert abs(((reply.angle_degrees - 6.0) + 180) % 360 - 180) < 1.0  # the turn it was given


def test_compose_down_drains_the_calls_in_flight(single, page):
    # Takes the service down, so it comes after the other users of `single`.
    project, container, port = single
    small = cv2.resize(page, (page.shape[1] // 2, page.shape[0] // 2), interpolation=cv2.INTER_AREA)
    encoded = _png(small)
    first = threading.Event()
    sent_after_signal = []
    down_started = threading.Event()

    def requests():
        # One call in flight across the whole shutdown: items keep coming for 9 s, past the
        # 5 s drain delay and into the grace period.
        for i in range(60):
            if down_started.is_set():
                sent_after_signal.append(i)
            yield make_request(encoded, request_id=f"p{i}", model="doc-rotation", encoding="none")
            time.sleep(0.15)

    # Started before the stop: prints the server's exit status once it exits.
    waiter = subprocess.Popen(["docker", "wait", container], stdout=PIPE, stderr=PIPE, text=True)
    results: list[pb.AlignStreamResponse] = []
    errors: list[Exception] = []

    def call():
        channel, stub = retrying_stub(f"127.0.0.1:{port}")
        try:
            for item in stub.AlignStream(requests(), timeout=120):
                results.append(item)
                first.set()
        except Exception as exc:  # reported below, with what the logs say
            errors.append(exc)
            first.set()
        finally:
            channel.close()

    caller = threading.Thread(target=call)
    caller.start()
    assert first.wait(60)
    logs = subprocess.Popen(
        ["docker", "logs", "-f", container], stdout=PIPE, stderr=PIPE, text=True
    )
    down_started.set()
    started = time.monotonic()
    down = project.run("down", "-t", "60", check=False, timeout=180)
    took = time.monotonic() - started
    caller.join(60)
    code, _ = waiter.communicate(timeout=30)
    log_text, log_err = logs.communicate(timeout=30)
    events = [json.loads(x) for x in (log_err + log_text).splitlines() if x.startswith("{")]
    messages = [e["message"] for e in events]
    project.docker.say(
        f"compose down took {took:.1f} s; {len(results)} of 60 stream items came back, "
        f"{len(sent_after_signal)} of them sent after the stop began"
    )

    assert down.returncode == 0, down.stderr
    # A stream open across the stop answers every item it took, then ends UNAVAILABLE (which
    # clients retry) saying so, so that the rest goes to another replica: nothing is lost.
    assert len(errors) == 1 and errors[0].code() == grpc.StatusCode.UNAVAILABLE, errors
    assert "draining" in errors[0].details()
    answered = sorted(int(r.id[1:]) for r in results)  # in completion order
    assert answered == list(range(len(results))) and results, answered
    assert all(r.WhichOneof("outcome") == "result" for r in results)
    assert sent_after_signal, "the stream should still be sending when the server is told to stop"
    assert set(sent_after_signal) & set(answered), "items sent during the drain delay are served"
    assert code.strip() == "0"  # the server exited cleanly
    # The logs tell the story: the signal, the drain, the stream's end, then the stop.
    assert messages.index("draining") < len(messages) - 1 and messages[-1] == "stopped"
    stream_done = [
        i
        for i, e in enumerate(events)
        if e["message"] == "call" and e.get("method", "").endswith("AlignStream")
    ]
    assert stream_done and events[stream_done[-1]]["code"] == "UNAVAILABLE"
    assert messages.index("draining") < stream_done[-1] < messages.index("stopped")
    assert any(e.get("signal") == "SIGTERM" for e in events)


@pytest.fixture(scope="module")
def replicas(docker: Docker):
    """The replicas-cpu profile: three CPU replicas behind HAProxy, on loopback ports."""
    lb_port, stats_port = free_port(), free_port()
    project = Project(
        docker,
        f"stn-replicas-{os.getpid()}",
        ["replicas-cpu"],
        {"STN_PUBLISH_LB_PORT": str(lb_port), "STN_PUBLISH_LB_STATS_PORT": str(stats_port)},
    )
    started = time.monotonic()
    try:
        project.run("up", "-d", "--no-build", "lb-cpu")
        containers = project.containers("stn-replica-cpu")
        assert len(containers) == 3
        wait_healthy(containers)
        deadline = time.monotonic() + 60
        while True:
            try:
                up = [n for n, r in haproxy_servers(stats_port).items() if r["status"] == "UP"]
            except OSError:
                up = []
            if len(up) == 3:
                break
            assert time.monotonic() < deadline, f"HAProxy sees {up} up"
            time.sleep(1)
        docker.say(f"3 replicas healthy and balanced {time.monotonic() - started:.0f} s after `up`")
        yield project, containers, lb_port, stats_port
    finally:
        project.down()


def _align_counting(stub, request, counts, errors) -> None:
    try:
        _, call = stub.Align.with_call(request, timeout=60)
        counts[dict(call.initial_metadata())["x-stn-replica"]] += 1
    except Exception as exc:  # a failed call, after the client's retries
        errors.append(exc)


def test_calls_spread_over_all_three_replicas(replicas, page):
    _, _, lb_port, stats_port = replicas
    request = make_request(_png(page), model="doc-rotation", encoding="none")
    counts: collections.Counter[str] = collections.Counter()
    errors: list[Exception] = []
    channel, stub = retrying_stub(f"127.0.0.1:{lb_port}")  # one client, one connection
    with channel:
        for _ in range(24):
            _align_counting(stub, request, counts, errors)
    assert not errors
    assert len(counts) == 3 and min(counts.values()) >= 4, counts
    # HAProxy's own counters agree: each of its three live servers took calls.
    served = {n: int(r["stot"]) for n, r in haproxy_servers(stats_port).items() if r["stot"] != "0"}
    assert set(served) == set(counts)


def test_a_replica_stopped_under_load_fails_no_call(replicas, page):
    project, containers, lb_port, _ = replicas
    small = cv2.resize(page, (page.shape[1] // 2, page.shape[0] // 2), interpolation=cv2.INTER_AREA)
    request = make_request(_png(small), model="doc-rotation", encoding="none")
    before: collections.Counter[str] = collections.Counter()
    after: collections.Counter[str] = collections.Counter()
    errors: list[Exception] = []
    stopped = threading.Event()
    deadline = [time.monotonic() + 120]

    def client():
        channel, stub = retrying_stub(f"127.0.0.1:{lb_port}")
        with channel:
            while time.monotonic() < deadline[0]:
                _align_counting(stub, request, after if stopped.is_set() else before, errors)

    clients = [threading.Thread(target=client) for _ in range(4)]
    for t in clients:
        t.start()
    time.sleep(3)
    victim = containers[1]
    stop = run(["docker", "stop", "-t", "60", victim], timeout=120)  # SIGTERM: drain, then exit
    stopped.set()
    deadline[0] = time.monotonic() + 6  # keep the load on the two left
    for t in clients:
        t.join(180)
    project.docker.say(
        f"under load: {sum(before.values())} calls before the stop {dict(before)}, "
        f"{sum(after.values())} after {dict(after)}, {len(errors)} failed"
    )
    assert stop.returncode == 0
    assert not errors, errors[:3]
    assert len(before) == 3 and sum(after.values()) >= 10
    assert len(after) == 2  # the stopped replica is out of the rotation
    # The replica's agent check said "drain" as its drain began, so HAProxy stopped sending it
    # calls within about a second, not only when its port closed after the 5 s drain delay.
    (victim_slot,) = set(before) - set(after)
    others = [n for k, n in before.items() if k != victim_slot]
    assert before[victim_slot] < 0.75 * min(others), before
    assert inspect(victim, "{{.State.ExitCode}}") == "0"
    messages = [
        json.loads(x)["message"]
        for x in run(["docker", "logs", victim]).stderr.splitlines()
        if x.startswith("{")
    ]
    assert "draining" in messages and messages[-1] == "stopped"
