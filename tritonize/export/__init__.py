"""Checkpoint -> ONNX export and its validation against PyTorch.

Heavy imports (torch, transformers) happen inside the functions that need them, so the
tensor declarations and the repository generator stay importable without torch.
"""
