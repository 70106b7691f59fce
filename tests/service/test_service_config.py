from __future__ import annotations

import argparse

import pytest

from service.config import SETTINGS, ConfigError, ServiceConfig, add_flags, load_config


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
