"""Helpers for tests that load the real server from several threads at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def run_concurrently(users: int, per_user: Callable[[Any, int], None], make_client: Callable[[], Any]) -> None:
    """Start ``users`` threads, each with its own client, released together by a barrier.

    ``per_user(client, i)`` does user ``i``'s requests. Re-raises the first failure.
    """
    barrier = threading.Barrier(users)
    errors: list[BaseException] = []

    def user(i: int) -> None:
        try:
            with make_client() as client:
                barrier.wait()
                per_user(client, i)
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def model_stats(http_url: str, model: str, admin_key: str | None = None) -> tuple[int, int]:
    """(inference_count, execution_count) of a model from Triton's statistics extension.

    ``admin_key``: the statistics endpoint is restricted unless the server exposes it.
    """
    import tritonclient.http as httpclient

    headers = {"admin-key": admin_key} if admin_key else None
    client = httpclient.InferenceServerClient(http_url, connection_timeout=30, network_timeout=30)
    try:
        stats = client.get_inference_statistics(model, headers=headers)["model_stats"][0]
    finally:
        client.close()
    return int(stats["inference_count"]), int(stats["execution_count"])
