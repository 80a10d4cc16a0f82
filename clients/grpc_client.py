"""Classify texts over gRPC with plain tritonclient; the same request as the HTTP example.

    python clients/grpc_client.py "i feel great" "this is scary" --url 127.0.0.1:8001
"""

import argparse

import numpy as np
import tritonclient.grpc as grpcclient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("texts", nargs="+")
    parser.add_argument("--url", default="127.0.0.1:8001")
    parser.add_argument("--model", default="distilbert_emotion")
    args = parser.parse_args()

    client = grpcclient.InferenceServerClient(args.url)
    print("server ready:", client.is_server_ready(), "| model ready:", client.is_model_ready(args.model))
    text = np.array([t.encode("utf-8") for t in args.texts], dtype=np.object_).reshape(-1, 1)
    inputs = [grpcclient.InferInput("TEXT", list(text.shape), "BYTES")]
    inputs[0].set_data_from_numpy(text)
    outputs = [grpcclient.InferRequestedOutput("LABEL"), grpcclient.InferRequestedOutput("SCORE")]
    result = client.infer(args.model, inputs, outputs=outputs, client_timeout=30)

    for t, label, score in zip(args.texts, result.as_numpy("LABEL")[:, 0], result.as_numpy("SCORE")[:, 0]):
        print(f"{t!r}: {label.decode()} ({score:.3f})")


if __name__ == "__main__":
    main()
