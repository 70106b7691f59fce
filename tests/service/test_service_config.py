from __future__ import annotations

import argparse

import pytest

from stn_align.service.config import SETTINGS, ConfigError, ServiceConfig, add_flags, load_config


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser)
    return parser.parse_args(list(argv))


def test_defaults_match_the_settings_table():
    config = load_config({}, None)
    for s in SETTINGS:
        assert getattr(config, s.name) == s.default, s.name
    assert config == ServiceConfig()
    assert config.max_message_bytes >= 64 * 1024 * 1024


def test_environment_then_flags_override():
    env = {
        "STN_MAX_BATCH_SIZE": "4",
        "STN_REQUIRE_GPU": "yes",
        "STN_DEVICE": "cuda",
        "STN_WARP": "opencv",
    }
    config = load_config(env, _args("--max-batch-size", "9", "--max-queue-delay-ms", "0.5"))
    assert config.max_batch_size == 9
    assert config.require_gpu is True and config.device == "cuda" and config.warp == "opencv"
    assert config.max_queue_delay_ms == 0.5


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"STN_MAX_BATCH_SIZE": "many"}, "STN_MAX_BATCH_SIZE"),
        ({"STN_MAX_BATCH_SIZE": "0"}, "max_batch_size"),
        ({"STN_DEVICE": "tpu"}, "STN_DEVICE"),
        ({"STN_REQUIRE_GPU": "maybe"}, "STN_REQUIRE_GPU"),
        ({"STN_ADDRESS": "nowhere"}, "STN_ADDRESS"),
        ({"STN_TLS_CERT": "/no/such.pem"}, "tls_key"),
        ({"STN_TLS_CERT": "/no/such.pem", "STN_TLS_KEY": "/no/key.pem"}, "STN_TLS_CERT"),
        ({"STN_REQUIRE_GPU": "1", "STN_DEVICE": "cpu"}, "require_gpu"),
        ({"STN_WARP": "gpu"}, "--warp"),
    ],
)
def test_errors_name_the_setting(env, named):
    with pytest.raises(ConfigError, match=named):
        load_config(env, None)


def test_bad_flag_value_names_the_flag():
    with pytest.raises(ConfigError, match="--workers"):
        load_config({}, _args("--workers", "-3"))


def test_replace_validates():
    with pytest.raises(ConfigError):
        ServiceConfig().replace(max_queue_size=0)
    assert ServiceConfig().replace(models="a, b,").model_names == ["a", "b"]


@pytest.mark.parametrize(
    ("cores", "workers", "threads", "expected"),
    [
        (2, 0, 0, (2, 1)),  # auto: a single-threaded run per core
        (16, 0, 0, (4, 4)),  # at most four runs, sharing the cores
        (1, 0, 0, (1, 1)),
        (8, 1, 0, (1, 8)),  # one run at a time gets every core
        (8, 2, 3, (2, 3)),  # both set: as given
    ],
)
def test_batch_workers_and_threads_share_the_cores(monkeypatch, cores, workers, threads, expected):
    monkeypatch.setattr("stn_align.service.config.cpu_cores", lambda: cores)
    config = ServiceConfig(batch_workers=workers, ort_threads=threads)
    assert (config.batch_workers_for(False), config.intra_op_threads()) == expected
    assert config.batch_workers_for(True) == (workers or 1)  # the GPU queues: one unless set


def test_every_setting_is_documented():
    from pathlib import Path

    table = (Path(__file__).resolve().parents[2] / "docs" / "service.md").read_text()
    for setting in SETTINGS:
        assert f"| {setting.name} | `{setting.env}` | `{setting.flag}` |" in table, setting.name


@pytest.mark.parametrize(
    ("cpu_max", "expected"), [("150000 100000\n", 2), ("max 100000\n", None), ("junk", None)]
)
def test_cpu_cores_follow_a_container_quota(monkeypatch, tmp_path, cpu_max, expected):
    import os

    from stn_align.service import config

    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    monkeypatch.setattr(config, "CPU_MAX", path)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(16)), raising=False)
    assert config.cpu_cores() == (expected or 16)
