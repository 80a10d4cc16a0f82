"""The ``tritonserver`` command line of a containerised server (compose and Kubernetes alike).

The arguments come from the one builder every server uses (:mod:`tritonize.server_args`), filled
in from the spec's ``[server]`` table and the pinned release: the same security defaults as
``tritonize serve`` (model control mode ``none``, strict readiness, the admin APIs behind the
admin header), the HTTP request size limit where the release's Triton has the flag, and on the
gpu target a CUDA memory pool per GPU. The container listens on all interfaces; exposure is
decided by the compose port binding or the NetworkPolicy. Inference stays open here: the pinned
release carries the fixes for the single-request crashes (:mod:`tritonize.triton_facts`).
"""

from __future__ import annotations

from tritonize import triton_facts
from tritonize.deploy.release import Release
from tritonize.server import ADMIN_HEADER, RESTRICTED_APIS
from tritonize.server_args import Restriction, TritonServerOptions
from tritonize.spec import ServerSpec, Target

MIB = 1 << 20


def server_options(server: ServerSpec, release: Release, target: Target, *, repository: str, admin_key: str) -> TritonServerOptions:
    """Typed options of one containerised server; ``admin_key`` may be a compose or Kubernetes variable reference."""
    gpu = target is Target.GPU
    limit = triton_facts.supports("http-max-input-size", release.triton_version)
    return TritonServerOptions(
        triton_version=release.triton_version,
        repository=repository,
        http_port=server.http_port,
        grpc_port=server.grpc_port,
        metrics_port=server.metrics_port,
        restrictions=(Restriction(apis=RESTRICTED_APIS, header=ADMIN_HEADER, key=admin_key),),
        http_max_input_bytes=server.http_max_input_mib * MIB if limit else None,
        cuda_memory_pool_bytes=server.cuda_memory_pool_mib * MIB if gpu else None,
        gpus=server.gpus if gpu else 0,
    )


def triton_command(server: ServerSpec, release: Release, target: Target, *, repository: str, admin_key: str) -> list[str]:
    """Argument list (never a split string) of the tritonserver container."""
    return server_options(server, release, target, repository=repository, admin_key=admin_key).args()
