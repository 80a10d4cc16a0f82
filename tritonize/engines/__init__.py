"""TensorRT engines: profiles, precision plans, the build itself, build info and checks.

Everything but :mod:`tritonize.engines.tensorrt_build` and :mod:`tritonize.engines.runtime`
is plain Python and runs without TensorRT: a plan (profiles + precision) is derived from the
spec and the tensors each architecture declares, and can be printed, tested and written into
the repository on a machine that has no GPU. Only the build and the engine validation import
``tensorrt`` (lazily), so they run where TensorRT runs: the NGC TensorRT image of the pinned
release, on the GPU the engines will serve on (engines are tied to both).
"""
