"""Locust load test of a tritonize deployment served by Triton, over HTTP and gRPC.

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000                  # web UI, both users
    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000 --headless \\
        -u 8 -r 8 -t 20s --triton-model distilbert_emotion TritonGrpcUser           # one user class

``--host`` is the HTTP endpoint; gRPC users use the port above it (Triton's 8000/8001 layout)
unless ``--grpc-url host:port`` or ``--host grpc://host:port`` says otherwise. Extra flags:
``--triton-model``, ``--triton-batch`` (texts per request), ``--corpus`` (``text;label`` or
TSV file; default: the built-in emotion corpus), ``--triton-timeout``, ``--grpc-url``,
``--triton-refusal-backoff`` (seconds a user waits after an overload refusal), ``--inference-key``
(default ``$TRITONIZE_INFERENCE_KEY``: a server that puts inference behind a key).
``tritonize loadtest`` runs this file headless and adds Triton's server-side numbers.

Every user is a closed loop (no wait between requests) with its own tritonclient connection.
Requests are timed with ``environment.events.request.measure``; any exception (a
``ClientError`` naming URL, model and cause) counts as a failure, except an overload refusal
(``OverloadedError``: the server's queue was full), which is recorded under its own request
type (``GRPC refused`` / ``HTTP refused``) so summaries count refusals apart from failures.
``soak_shape.py`` beside this file adds a ramp / hold / spike / recover load shape (``--shape soak``).
"""

from __future__ import annotations

import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()  # before any channel exists: gRPC's I/O must yield to gevent

import itertools  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from functools import lru_cache  # noqa: E402

import gevent  # noqa: E402
from locust import User, events, task  # noqa: E402
from locust.rpc import Message  # noqa: E402
from locust.runners import MasterRunner  # noqa: E402

from tritonize.client import TritonizeClient  # noqa: E402
from tritonize.endpoints import EndpointPool  # noqa: E402
from tritonize.errors import InferenceError, OverloadedError  # noqa: E402
from tritonize.loadtest.payload import (  # noqa: E402
    DEFAULT_MODEL,
    TextSampler,
    corpus_texts,
    endpoint_list,
    outputs_for,
    request_type,
    response_bytes,
)
from tritonize.server import INFERENCE_KEY_ENV  # noqa: E402

_user_ids = itertools.count()
# One endpoint pool per protocol and server list in this process, shared by its users: what one
# user learns about a server that is down spares the others (tritonize.endpoints).
_pools: dict[tuple[str, str], EndpointPool] = {}
FINAL_REPORT_WAIT_S = 30.0  # how long a master waits for its workers' last statistics


@events.init_command_line_parser.add_listener
def _add_arguments(parser) -> None:
    group = parser.add_argument_group("tritonize", "Triton deployment under test")
    group.add_argument("--triton-model", default=DEFAULT_MODEL, help="deployment (ensemble) name")
    group.add_argument("--triton-batch", type=int, default=1, help="texts per request")
    group.add_argument("--corpus", default="", help="text;label or TSV file (default: built-in emotion corpus)")
    group.add_argument("--triton-timeout", type=float, default=30.0, help="per-request timeout, seconds")
    group.add_argument(
        "--triton-urls",
        default="",
        help="several servers, round robin: comma-separated host:port of the users' protocol, e.g. "
        "h1:8001,h2:8001 with TritonGrpcUser (default: --host, which may list several too)",
    )
    group.add_argument("--grpc-url", default="", help="gRPC host:port (default: --host port + 1)")
    group.add_argument(
        "--triton-refusal-backoff", type=float, default=0.1, help="seconds a user waits after an overload refusal"
    )
    parser.add_argument(  # on the parser, not the group: only Locust's parser takes include_in_web_ui
        "--inference-key",
        default=os.environ.get(INFERENCE_KEY_ENV) or "",
        include_in_web_ui=False,  # a secret: not shown (or sent back) by the web UI
        help=f"key of a server with inference behind a key (default: ${INFERENCE_KEY_ENV}; prefer the variable)",
    )


@events.init.add_listener
def _wait_for_final_worker_reports(environment, **_kwargs) -> None:
    """A master quits only after each worker sent its last statistics (at most FINAL_REPORT_WAIT_S).

    Locust's master sends its workers "quit" and gives them 0.5 s to report their last requests
    (locustio/locust#1426); a worker slowed down by a busy machine reports later, its last requests
    are lost and the merged count falls short of the server's (seen here: 5101 against 5770). A
    worker sends its final report before its own "quit", so the master waits for those.
    """
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        return
    locust_quit = runner.quit

    def quit_after_final_reports() -> None:
        for client in list(runner.clients.all):
            runner.server.send_to_client(Message("quit", None, client.id))
        deadline = time.monotonic() + FINAL_REPORT_WAIT_S
        while runner.clients.all and time.monotonic() < deadline:
            gevent.sleep(0.1)
        locust_quit()

    runner.quit = quit_after_final_reports


@lru_cache(maxsize=4)
def _texts(path: str) -> list[str]:
    return corpus_texts(path or None)


class TritonUser(User):
    """Sends texts to one deployment through its own tritonclient connection(s); subclasses pick the protocol.

    Several servers (``--triton-urls`` or a comma-separated ``--host``): each user keeps a
    connection to each and sends round robin through the process's shared endpoint pool.
    """

    abstract = True
    protocol = "http"
    refused = False  # the last request was refused as overloaded: back off before the next

    def wait_time(self) -> float:
        """Closed loop; after a refusal the user waits, as a client told "retry later" should."""
        return self.environment.parsed_options.triton_refusal_backoff if self.refused else 0.0

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.model = options.triton_model
        urls = endpoint_list(self.host or "", self.protocol, options.grpc_url or None, options.triton_urls or None)
        self.url = ",".join(urls)
        self.sampler = TextSampler(_texts(options.corpus), batch=options.triton_batch, seed=next(_user_ids))
        self.request_name = self.model if options.triton_batch == 1 else f"{self.model} x{options.triton_batch}"
        shared = (self.protocol, self.url)
        self.client = TritonizeClient(
            self.url,
            self.protocol,
            timeout=options.triton_timeout,
            endpoints=_pools.get(shared),
            inference_key=options.inference_key or None,
        )
        _pools.setdefault(shared, self.client.endpoints)
        self.outputs: list[str] = []  # looked up by the first request

    def on_stop(self) -> None:
        self.client.close()

    @task
    def infer(self) -> None:
        texts = self.sampler.next()
        with self.environment.events.request.measure(request_type(self.protocol), self.request_name) as meta:
            if not self.outputs:  # first request of this user (a failure here counts as one)
                self.outputs = outputs_for(self.client.model_metadata(self.model))
            try:
                self.refused = False
                outputs = self.client.infer_raw(self.model, texts, self.outputs)
            except OverloadedError:
                self.refused = True
                meta["request_type"] = request_type(self.protocol, refused=True)
                raise
            rows = outputs[self.outputs[0]].shape[0]
            if rows != len(texts):
                raise InferenceError(self.url, self.model, f"sent {len(texts)} texts, got {rows} results")
            meta["response_length"] = response_bytes(outputs)


class TritonHttpUser(TritonUser):
    protocol = "http"


class TritonGrpcUser(TritonUser):
    protocol = "grpc"
