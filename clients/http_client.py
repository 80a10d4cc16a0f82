"""Classify texts over HTTP with plain tritonclient: the raw KServe v2 request, nothing hidden.

    python clients/http_client.py "i feel great" "this is scary" --url 127.0.0.1:8000
"""

import argparse

import numpy as np
import tritonclient.http as httpclient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("texts", nargs="+")
    parser.add_argument("--url", default="127.0.0.1:8000")
    parser.add_argument("--model", default="distilbert_emotion")
    args = parser.parse_args()

    client = httpclient.InferenceServerClient(args.url)
    # TEXT is TYPE_STRING with dims [1] and a batch dimension: shape [n, 1], datatype BYTES.
    text = np.array([t.encode("utf-8") for t in args.texts], dtype=np.object_).reshape(-1, 1)
    inputs = [httpclient.InferInput("TEXT", list(text.shape), "BYTES")]
    inputs[0].set_data_from_numpy(text)
    outputs = [httpclient.InferRequestedOutput(name) for name in ("LABEL", "SCORE", "PROBABILITIES")]
    result = client.infer(args.model, inputs, outputs=outputs)

    for t, label, score, probs in zip(
        args.texts, result.as_numpy("LABEL")[:, 0], result.as_numpy("SCORE")[:, 0], result.as_numpy("PROBABILITIES")
    ):
        print(f"{t!r}: {label.decode()} ({score:.3f})  all: {np.round(probs, 3).tolist()}")


if __name__ == "__main__":
    main()
