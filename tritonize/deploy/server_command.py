"""The ``tritonserver`` command line of a containerised server (compose and Kubernetes alike).

Same security defaults as ``tritonize serve``: model control mode ``none``, strict readiness, and
the admin APIs restricted to the header named in :mod:`tritonize.server`. The API list and header
are imported, never retyped, so an API added there is restricted here too. The container listens
on all interfaces; exposure is decided by the compose port binding or the NetworkPolicy.
"""

from __future__ import annotations

from tritonize.server import ADMIN_HEADER, RESTRICTED_APIS
from tritonize.spec import ServerSpec


def restriction(admin_key: str) -> str:
    """``<api>,<api>:<header>=<key>``: the value of ``--http-restricted-api`` / ``--grpc-restricted-protocol``."""
    return f"{','.join(RESTRICTED_APIS)}:{ADMIN_HEADER}={admin_key}"


def triton_command(server: ServerSpec, *, repository: str, admin_key: str) -> list[str]:
    """Argument list (never a split string); ``admin_key`` may be a compose or Kubernetes variable reference."""
    return [
        "tritonserver",
        f"--model-repository={repository}",
        "--model-control-mode=none",
        "--strict-readiness=true",
        f"--http-port={server.http_port}",
        f"--grpc-port={server.grpc_port}",
        f"--metrics-port={server.metrics_port}",
        f"--http-restricted-api={restriction(admin_key)}",
        f"--grpc-restricted-protocol={restriction(admin_key)}",
    ]
