"""Top-k classes with Triton's classification extension, using tritonclient directly.

    python clients/classification_extension.py --url 127.0.0.1:8000 --top-k 3 "i am so happy"

Asking for ``PROBABILITIES`` with ``class_count=k`` makes Triton return, instead of the
probability vector, the k best classes as strings ``"score:index:label"`` (labels come from the
output's ``label_filename``). No tritonize code is needed on the client side.
"""

from __future__ import annotations

import argparse

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient


def top_k(url: str, protocol: str, model: str, texts: list[str], k: int) -> list[list[tuple[str, float]]]:
    module = grpcclient if protocol == "grpc" else httpclient
    client = module.InferenceServerClient(url)
    data = np.array([t.encode("utf-8") for t in texts], dtype=np.object_).reshape(-1, 1)
    text = module.InferInput("TEXT", list(data.shape), "BYTES")
    text.set_data_from_numpy(data)
    output = module.InferRequestedOutput("PROBABILITIES", class_count=k)
    result = client.infer(model, [text], outputs=[output])
    client.close()
    rows = []
    for row in result.as_numpy("PROBABILITIES").reshape(len(texts), k):
        entries = [item.decode("utf-8").split(":", 2) for item in row]  # score:index:label
        rows.append([(label, float(score)) for score, _index, label in entries])
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("texts", nargs="*", default=["i am so happy today", "this is terrible and i hate it"])
    parser.add_argument("--url", default="127.0.0.1:8000")
    parser.add_argument("--protocol", choices=("grpc", "http"), default="http")
    parser.add_argument("--model", default="distilbert_emotion")
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args()
    for text, classes in zip(args.texts, top_k(args.url, args.protocol, args.model, args.texts, args.top_k)):
        print(text)
        for label, score in classes:
            print(f"  {label:>9} {score:.4f}")
