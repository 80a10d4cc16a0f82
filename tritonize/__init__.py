"""tritonize: serve Hugging Face text models from NVIDIA Triton Inference Server.

Pipeline: spec -> export (ONNX) -> engines (TensorRT) -> repository -> server -> client -> loadtest.
"""

__version__ = "0.1.0"
