"""A load balancer's agent check: one line on a TCP port saying whether to send this server calls.

HAProxy's `agent-check` (deploy/haproxy/haproxy.cfg) connects every second and reads one line.
Its TCP check of the gRPC port sees a stopping replica only when the port closes, so calls kept
arriving through the whole drain; the agent says "drain" (weight 0: no new calls, those in flight
go on) as soon as draining starts, so by the time gRPC stops nothing new is on its way.

    agent = start_agent("0.0.0.0", 9101, lambda: "ready up 100%")
    agent.server_address; agent.shutdown(); agent.server_close()
"""

from __future__ import annotations

import logging
import socketserver
import threading
from collections.abc import Callable

log = logging.getLogger("stn.service")


class AgentServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], reply: Callable[[], str]) -> None:
        self.reply = reply
        super().__init__(address, AgentHandler)


class AgentHandler(socketserver.BaseRequestHandler):
    server: AgentServer

    def handle(self) -> None:
        try:
            self.request.sendall((self.server.reply() + "\n").encode("ascii"))
        except OSError as exc:  # the balancer hung up first: its next check asks again
            log.debug("agent check", extra={"error": str(exc)})


def start_agent(host: str, port: int, reply: Callable[[], str]) -> AgentServer:
    """Serve `reply()` to every connection on host:port from a daemon thread (OSError if the
    port is taken)."""
    server = AgentServer((host, port), reply)
    threading.Thread(target=server.serve_forever, name="agent", daemon=True).start()
    return server
