"""Container healthcheck: exit 0 when the local server's grpc.health.v1 says SERVING, 1 otherwise.

    python -m stn_align.service.healthcheck [--address 127.0.0.1:50051] [--service NAME] \
        [--timeout 3]

Reads STN_ADDRESS (its port) and STN_TLS_CERT (trusted as the CA, since the server's certificate
is usually issued for its public name, not 127.0.0.1) like the server does.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def default_address() -> str:
    port = os.environ.get("STN_ADDRESS", "0.0.0.0:50051").rpartition(":")[2]
    return f"127.0.0.1:{port}"


def check(address: str, service: str = "", timeout: float = 3.0, tls_cert: str = "") -> str:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if tls_cert:
        creds = grpc.ssl_channel_credentials(Path(tls_cert).read_bytes())
        # the certificate names the public host; we connect over loopback
        name = os.environ.get("STN_TLS_SERVER_NAME", "localhost")
        channel = grpc.secure_channel(address, creds, [("grpc.ssl_target_name_override", name)])
    else:
        channel = grpc.insecure_channel(address)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Exit 0 if the alignment server reports SERVING.")
    parser.add_argument(
        "--address", default=default_address(), help="host:port (default from STN_ADDRESS)"
    )
    parser.add_argument(
        "--service", default="", help="service name to check ('' = the whole server)"
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds")
    args = parser.parse_args(argv)
    try:
        status = check(args.address, args.service, args.timeout, os.environ.get("STN_TLS_CERT", ""))
    except Exception as exc:  # any failure to get an answer is "unhealthy"
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    print(status)
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
