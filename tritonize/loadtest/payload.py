"""What a load test sends: texts from a corpus, drawn in batches, and the size of what came back.

Kept free of locust and gevent so the locustfile, ``tritonize bench`` and tests share it.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from tritonize.corpus import builtin_emotion, load_corpus
from tritonize.endpoints import split_urls

DEFAULT_MODEL = "distilbert_emotion"
REFUSED_SUFFIX = " refused"  # Locust request type of a request the server refused as overloaded


def request_type(protocol: str, refused: bool = False) -> str:
    """Locust's request type: ``GRPC`` / ``HTTP``, or ``GRPC refused`` for an overload refusal.

    Refusals are kept in their own Locust entry so they are counted apart from failures and
    their instant answers do not pull the latency percentiles of served requests down.
    """
    return protocol.upper() + (REFUSED_SUFFIX if refused else "")


def is_refusal(locust_request_type: str) -> bool:
    return locust_request_type.endswith(REFUSED_SUFFIX)


def corpus_texts(path: str | Path | None = None) -> list[str]:
    """Texts of a ``text;label`` / TSV corpus file, or of the built-in emotion corpus when ``None``.

    Raises:
        CorpusError: the file cannot be read or is malformed.
    """
    examples = load_corpus(path) if path else builtin_emotion()
    return [example.text for example in examples]


def perf_analyzer_input(texts: list[str]) -> dict[str, Any]:
    """perf_analyzer's ``--input-data`` JSON: one request per text, ``TEXT`` of shape [1]."""
    return {"data": [{"TEXT": {"content": [text], "shape": [1]}} for text in texts]}


class TextSampler:
    """Endless, reproducible draws of ``batch`` texts: a shuffled pass over the corpus, then another.

    Each user gets its own sampler (own seed), so users do not send the same text in lockstep.
    """

    def __init__(self, texts: list[str], batch: int = 1, seed: int = 0) -> None:
        if not texts:
            raise ValueError("TextSampler needs at least one text")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.texts = list(texts)
        self.batch = batch
        self._rng = random.Random(seed)
        self._order: list[int] = []

    def next(self) -> list[str]:
        out = []
        while len(out) < self.batch:
            if not self._order:
                self._order = list(range(len(self.texts)))
                self._rng.shuffle(self._order)
            out.append(self.texts[self._order.pop()])
        return out


def response_bytes(outputs: dict[str, np.ndarray]) -> int:
    """Payload size of a result's output arrays (string bytes + numeric buffers).

    Used as Locust's ``response_length``; the same for both protocols, unlike wire sizes.
    """
    total = 0
    for array in outputs.values():
        if array is None:
            continue
        if array.dtype == np.object_:
            total += sum(len(item) if isinstance(item, bytes | str) else 0 for item in array.ravel())
        else:
            total += int(array.nbytes)
    return total


def outputs_for(metadata: dict[str, Any]) -> list[str]:
    """Outputs a load test asks for: ``GENERATED_TEXT`` of a text2text deployment, else LABEL + SCORE."""
    names = [output["name"] for output in metadata.get("outputs", [])]
    return ["GENERATED_TEXT"] if "GENERATED_TEXT" in names else ["LABEL", "SCORE"]


def endpoint(host: str, protocol: str, grpc_url: str | None = None) -> str:
    """``host:port`` of ``protocol`` from Locust's ``--host``.

    ``http://H:P`` is the HTTP endpoint; ``grpc://H:P`` the gRPC one. When the host names the
    other protocol, Triton's default layout is assumed (gRPC port = HTTP port + 1), unless
    ``grpc_url`` says otherwise.
    """
    if protocol == "grpc" and grpc_url:
        return grpc_url
    scheme, _, rest = host.partition("://")
    if not rest:
        scheme, rest = "http", host
    address = rest.rstrip("/")
    if scheme == protocol:
        return address
    hostname, _, port = address.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"cannot derive the {protocol} endpoint from --host {host!r}; give host:port")
    shift = 1 if protocol == "grpc" else -1
    return f"{hostname}:{int(port) + shift}"


def endpoint_list(host: str, protocol: str, grpc_url: str | None = None, urls: str | None = None) -> tuple[str, ...]:
    """``host:port`` of every server that ``protocol`` users send to (several: round robin).

    ``urls`` (the locustfile's ``--triton-urls``) lists the endpoints of the users' protocol,
    comma-separated, as given (an entry with a scheme goes through :func:`endpoint`). Without
    it, ``host`` (Locust's ``--host``) may list several entries like ``--host``'s, each turned
    into the protocol's endpoint by :func:`endpoint`; an entry without a scheme takes the scheme
    of the entry before it (the first: ``http``), so ``grpc://h1:8001,h2:8001`` is two gRPC
    endpoints. ``grpc_url`` (comma-separated too) gives the gRPC endpoints outright.

    Raises:
        ClientError: an entry is not ``host:port`` or is listed twice.
        ValueError: an entry names no port to derive the other protocol's from.
    """
    if protocol == "grpc" and grpc_url:
        return split_urls(grpc_url)
    if urls:
        return split_urls([endpoint(url.strip(), protocol) if "://" in url else url for url in urls.split(",")])
    scheme = "http"
    found = []
    for entry in host.split(","):
        entry = entry.strip()
        if "://" in entry:
            scheme = entry.partition("://")[0]
        else:
            entry = f"{scheme}://{entry}"
        found.append(endpoint(entry, protocol))
    return split_urls(found)
