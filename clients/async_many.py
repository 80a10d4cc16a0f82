"""Many concurrent requests from one thread with the asyncio client.

    python clients/async_many.py --url 127.0.0.1:8001 --protocol grpc --concurrency 16

Sends every text of a corpus as its own request, ``--concurrency`` in flight at once (Triton's
dynamic batcher merges them), then the same texts as batched requests, and prints both rates.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

from tritonize.aio_client import AsyncTritonizeClient
from tritonize.loadtest.payload import corpus_texts


async def main(args: argparse.Namespace) -> None:
    texts = corpus_texts(args.corpus)
    async with AsyncTritonizeClient(args.url, args.protocol, timeout=args.timeout) as client:
        await client.classify(texts[:1], model=args.model)  # connect and warm up

        start = time.perf_counter()
        results = await client.classify_many(texts, model=args.model, concurrency=args.concurrency)
        single = time.perf_counter() - start

        start = time.perf_counter()
        await client.classify(texts, model=args.model)
        batched = time.perf_counter() - start

    print(f"{len(texts)} texts, {args.concurrency} requests in flight: {len(texts) / single:.1f} texts/s")
    print(f"{len(texts)} texts in batched requests: {len(texts) / batched:.1f} texts/s")
    print("labels:", dict(Counter(r["label"] for r in results).most_common()))
    for text, result in list(zip(texts, results))[:3]:
        print(f"  {result['label']:>9} {result['score']:.3f}  {text[:60]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="host:port (default 127.0.0.1:8001 gRPC, :8000 HTTP)")
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    parser.add_argument("--model", default="distilbert_emotion")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--corpus", default=None, help="text;label or TSV file (default: built-in emotion corpus)")
    parser.add_argument("--timeout", type=float, default=30.0)
    asyncio.run(main(parser.parse_args()))
