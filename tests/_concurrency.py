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


def model_stats(http_url: str, model: str) -> tuple[int, int]:
    """(inference_count, execution_count) of a model from Triton's statistics extension."""
    import tritonclient.http as httpclient

    stats = httpclient.InferenceServerClient(http_url).get_inference_statistics(model)["model_stats"][0]
    return int(stats["inference_count"]), int(stats["execution_count"])
