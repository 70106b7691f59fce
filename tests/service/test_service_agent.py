"""The load balancer's agent check (service/agent.py): 'down' while the models load, 'ready up
100%' while serving, 'drain' from the moment draining starts, and a taken port named at start-up."""

from __future__ import annotations

import socket
import threading

import pytest

from stn_align.service.server import BindError, create_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        return conn.makefile().readline()


def test_the_agent_follows_loading_serving_and_draining(base_config):
    config = base_config.replace(agent_port=_free_port(), drain_delay_s=1.0)
    handle, _ = create_server("127.0.0.1:0", config, load=False)
    try:
        port = handle.start_agent()
        assert port == config.agent_port
        assert _read(port) == "down\n"
        handle.load()
        assert _read(port) == "ready up 100%\n"
        drain = threading.Thread(target=handle.drain)
        drain.start()
        handle.drain_state.draining.wait(5)
        assert _read(port) == "drain\n"  # during the delay: calls are still served meanwhile
        drain.join(30)
        assert handle.stopped.is_set()
        with pytest.raises(OSError):  # closed with the server
            _read(port)
    finally:
        handle.drain(0, 0)


def test_no_agent_unless_its_port_is_set(base_config):
    handle, _ = create_server("127.0.0.1:0", base_config, load=False)
    try:
        assert handle.start_agent() is None
    finally:
        handle.drain(0, 0)


def test_a_taken_agent_port_names_the_setting(base_config):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = base_config.replace(agent_port=taken.getsockname()[1])
        handle, _ = create_server("127.0.0.1:0", config, load=False)
        try:
            with pytest.raises(BindError, match="agent_port"):
                handle.start_agent()
        finally:
            handle.drain(0, 0)
