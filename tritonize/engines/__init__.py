"""TensorRT engines: profiles, precision plans and graphs, the build, its runners, build info and checks.

Everything but the thin TensorRT adapter runs without TensorRT: a plan (profiles + precision)
is derived from the spec and the tensors each architecture declares; the plan's precision is
written into the ONNX graph the engine is built from (:mod:`~tritonize.engines.precision_graph`),
which ONNX Runtime runs here; the accuracy gate runs every step through one runner interface
(:mod:`~tritonize.engines.runners`), with ONNX Runtime standing in for the engines in a
rehearsal. Only :mod:`~tritonize.engines.tensorrt_build` and :mod:`~tritonize.engines.tensorrt_runner`
import ``tensorrt`` (lazily, through Polygraphy), so they run where TensorRT runs: the NGC
TensorRT image of the pinned release, on the GPU the engines will serve on (engines are tied to
both). What differs between TensorRT versions is in :mod:`~tritonize.tensorrt_facts`.
"""
