"""The embedded target's PyTorch runtimes: the model step in PyTorch, on CUDA or the CPU.

Why: TensorRT is not installed everywhere a GPU is, and the embedded server runs anywhere pip
does. With ``embedded_runtime = "torch-cuda"`` the fused classifier and the T5 entry model run
the checkpoint itself in PyTorch inside their Python-backend stub, so requests never cross
another step's shared memory and a GPU serves without an engine build. ``torch-cpu`` runs the
same code on the CPU: how the path is tested where there is no GPU.

What the repository holds for it (written by the build, loaded here without the hub): the
checkpoint as ``config.json`` + ``model.safetensors``, the transformers class of the task, and
the precision plan per component (``torch_plans``, JSON), resolved by the build from
:mod:`tritonize.engines.precision`, the rules TensorRT engines follow too:

* no FP32 islands: the component is cast to the plan's dtype (DistilBERT FP16, flan-T5 BF16);
* FP32 islands (T5 layer norm and residual adds): only the ``nn.Linear`` weights are cast, and
  the component runs under ``torch.autocast``; the matmuls run in FP16 while the embeddings,
  the layer norms (autocast runs ``pow``/``mean`` in FP32) and the residual stream (FP32 + FP16
  promotes to FP32) stay FP32, as in NVIDIA's TensorRT T5 demo;
* the logits projection kept FP32 (T5 decoders): ``lm_head`` keeps FP32 weights and runs
  outside autocast on an FP32 input, so the logits keep FP32's resolution as in the engines.

The classifier pads each length group to its length bucket and to a power-of-two row count,
and on CUDA replays one CUDA graph per (rows, length) bucket, captured at load (before the
model reports ready). Token ids go to the device from pinned host buffers; only the logits
come back. T5 steps are plain callables for :mod:`t5_decoding`'s one decoding program, so the
KV cache, the argmax and the row selection stay on the device.

Depends on numpy, torch and transformers only (imported inside the functions), never on the
rest of tritonize: it is copied beside ``model.py`` as ``tritonize_backend_torch_models.py``.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CHECKPOINT_FILES = (CONFIG_FILE, WEIGHTS_FILE)
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
DEVICES = ("cuda", "cpu")
CLASSIFIER = "model"  # the classifier's one component (the ONNX graph's component name)
T5_COMPONENTS = ("encoder", "decoder", "decoder_with_past")


class RuntimeUnavailable(RuntimeError):
    """The runtime cannot run here (no CUDA, no BF16 on this GPU). One line: it is what Triton's
    load error and the build's error show."""


@dataclass(frozen=True)
class ComponentPlan:
    """How one component runs: ``precision`` (fp32 | fp16 | bf16) and the FP32 islands kept."""

    precision: str
    keep_fp32: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.precision not in DTYPES:
            raise ValueError(f"precision must be one of {list(DTYPES)}, got {self.precision!r}")

    def dtype(self) -> Any:
        import torch

        return getattr(torch, DTYPES[self.precision])

    def context(self, device: Any) -> contextlib.AbstractContextManager:
        """``torch.autocast`` to the plan's dtype when islands stay FP32; else nothing."""
        import torch

        if self.keep_fp32 and self.precision != "fp32":
            return torch.autocast(device.type, dtype=self.dtype())
        return contextlib.nullcontext()


def parse_plans(text: str) -> dict[str, ComponentPlan]:
    """``{"model": {"precision": "fp16", "keep_fp32": []}}`` (the ``torch_plans`` parameter)."""
    raw = json.loads(text)
    return {c: ComponentPlan(p["precision"], tuple(p.get("keep_fp32", ()))) for c, p in raw.items()}


def plans_text(plans: dict[str, ComponentPlan]) -> str:
    return json.dumps({c: {"precision": p.precision, "keep_fp32": list(p.keep_fp32)} for c, p in plans.items()})


def torch_device(kind: str, device_id: int = 0) -> Any:
    """The torch device of a runtime (``cuda`` on GPU ``device_id``, or ``cpu``).

    Raises RuntimeUnavailable when CUDA is asked for and this torch sees none (a CPU-only wheel,
    no driver, the GPU hidden), naming the torch build and the interpreter it runs in.
    """
    import torch

    if kind not in DEVICES:
        raise RuntimeUnavailable(f"device must be one of {list(DEVICES)}, got {kind!r}")
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeUnavailable(
            f"embedded_runtime torch-cuda needs CUDA, and torch {torch.__version__} ({sys.executable}) sees no "
            "CUDA device: install a CUDA build of torch where the model runs, or build with "
            "embedded_runtime = \"torch-cpu\" or \"onnxruntime\""
        )
    if device_id >= torch.cuda.device_count():
        raise RuntimeUnavailable(f"GPU {device_id} is not visible to torch ({torch.cuda.device_count()} GPU(s) are)")
    torch.cuda.set_device(device_id)  # streams and graphs of this process default to its GPU
    return torch.device("cuda", device_id)


def instance_device(kind: str, args: dict[str, Any]) -> Any:
    """The device of a Triton model instance: its GPU for a ``KIND_GPU`` instance, else GPU 0 or
    the CPU. Raises RuntimeUnavailable as :func:`torch_device`."""
    gpu = args.get("model_instance_kind") == "GPU"
    return torch_device(kind, int(args.get("model_instance_device_id", 0)) if gpu else 0)


def set_threads(count: int, device: Any) -> None:
    """Intra-op threads of this process; 0: one on the CPU, torch's default with CUDA.

    Why one: every instance is its own stub process next to the server and its other stubs, and
    torch's OpenMP threads spin-wait; on a busy 2-core machine a tiny T5 fine-tune took 94 s on
    two threads and 7 s on one (see ``tritonize.demo.one_torch_thread``). Scale a CPU deployment
    with ``python_instances`` instead.
    """
    import torch

    if count > 0:
        torch.set_num_threads(count)
    elif device.type == "cpu":
        torch.set_num_threads(1)


def check_plans(plans: dict[str, ComponentPlan], device: Any) -> None:
    """Raises RuntimeUnavailable when a plan needs BF16 and this GPU has none (the build planned
    on a newer GPU: rebuilding on this one plans FP32 instead)."""
    import torch

    if device.type != "cuda" or not any(p.precision == "bf16" for p in plans.values()):
        return
    if not torch.cuda.is_bf16_supported(including_emulation=False):
        major, minor = torch.cuda.get_device_capability(device)
        raise RuntimeUnavailable(
            f"the precision plan runs BF16, which GPU {device.index} (compute capability {major}.{minor}) lacks: "
            "rebuild the repository on this GPU (the build plans FP32 there)"
        )


def load_pretrained(directory: str, model_class: str) -> Any:
    """``transformers.<model_class>.from_pretrained(directory)`` in eval mode, from local files only."""
    import transformers

    return getattr(transformers, model_class).from_pretrained(directory, local_files_only=True).eval()


LOGITS_PROJECTION = "logits_projection"  # tritonize.engines.precision's pattern of that name
_KEEP_FP32 = "_tritonize_keep_fp32"  # set on a module that no plan may cast


def keep_logits_fp32(model: Any, plans: dict[str, ComponentPlan], components: Sequence[str]) -> bool:
    """Replace ``model.lm_head`` with an FP32 projection run outside autocast when a plan of
    ``components`` keeps the logits projection FP32 below FP32; True when it did. Call it before
    :func:`apply_plans`, which then leaves the head alone."""
    import torch

    if not any(LOGITS_PROJECTION in plans[c].keep_fp32 and plans[c].precision != "fp32" for c in components):
        return False
    head = model.lm_head.float()
    setattr(head, _KEEP_FP32, True)

    class FP32Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = head

        def forward(self, hidden: Any) -> Any:
            with torch.autocast(hidden.device.type, enabled=False):
                return self.head(hidden.float())

    model.lm_head = FP32Head()
    return True


def _cast(module: Any, plan: ComponentPlan, tied: set[int]) -> None:
    """Cast a component in place as its plan says (see the module docstring). With islands, a
    Linear whose weight is an embedding's (T5's tied ``lm_head``) stays FP32: casting it would
    cast the embedding, and an FP16 embedding output would make the residual stream FP16."""
    import torch

    if plan.precision == "fp32":
        return
    if not plan.keep_fp32:
        module.to(plan.dtype())
        return
    for sub in module.modules():
        if isinstance(sub, torch.nn.Linear) and id(sub.weight) not in tied and not getattr(sub, _KEEP_FP32, False):
            sub.to(plan.dtype())


def apply_plans(model: Any, plans: dict[str, ComponentPlan], components: dict[str, list[Any]]) -> None:
    """Cast ``model`` per component plan. ``components`` maps each plan's component to the modules
    it covers. One plan for all: the whole model is cast (shared embeddings included). Different
    plans may only differ by FP32 and islands, which leave shared embeddings in FP32.

    Raises ValueError for plans that would cast a shared module twice.
    """
    import torch

    tied = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    distinct = set(plans.values())
    if len(distinct) == 1:
        _cast(model, next(iter(distinct)), tied)
        return
    if any(p.precision != "fp32" and not p.keep_fp32 for p in distinct):
        raise ValueError(f"components with different plans must keep FP32 islands or run FP32, got {plans}")
    for component, plan in plans.items():
        for module in components[component]:
            _cast(module, plan, tied)


# --- the classifier ---------------------------------------------------------------------------


def batch_buckets(max_rows: int) -> tuple[int, ...]:
    """Row counts a group is padded to: powers of two below ``max_rows``, and ``max_rows``."""
    sizes, size = [], 1
    while size < max_rows:
        sizes.append(size)
        size *= 2
    return (*sizes, max_rows)


MAX_PADDING_ROWS = 0.25  # a forward may pad this share of its rows; else the rows are split


def row_chunks(rows: int, buckets: Sequence[int]) -> list[int]:
    """Row counts (each one of ``buckets``) to run ``rows`` rows in: one padded forward when the
    bucket that fits wastes at most :data:`MAX_PADDING_ROWS` of it, else the largest bucket that
    is full and the rest likewise (130 rows: 128 + 2, not 256; 3 rows: one forward of 4)."""
    chunks = []
    while rows > 0:
        up = next((b for b in buckets if b >= rows), buckets[-1])
        if up >= rows and up - rows <= MAX_PADDING_ROWS * up:
            chunks.append(up)
            break
        full = max(b for b in buckets if b <= rows)
        chunks.append(full)
        rows -= full
    return chunks


def bucket_groups(lengths: Sequence[int], length_buckets: Sequence[int], max_rows: int) -> list[tuple[int, np.ndarray]]:
    """(length bucket, row indices) groups: rows of one bucket together, at most ``max_rows`` each.

    On a GPU cost follows the number of launches more than padded tokens, so a group is a whole
    length bucket (the shapes CUDA graphs were captured for), not the CPU path's tight groups.
    """
    lengths = np.asarray(lengths)
    buckets = np.asarray(length_buckets)
    which = np.minimum(np.searchsorted(buckets, lengths), len(buckets) - 1)
    groups = []
    for index in np.unique(which):
        rows = np.flatnonzero(which == index)
        groups += [(int(buckets[index]), rows[i : i + max_rows]) for i in range(0, len(rows), max_rows)]
    return groups


@dataclass
class _Shape:
    """Device buffers of one (rows, length) bucket and, on CUDA, its captured graph."""

    ids: Any
    mask: Any
    logits: Any = None
    graph: Any = None


class TorchClassifier:
    """Logits of token id lists, computed by a sequence classifier on one device.

    ``cuda_graphs`` (CUDA only): every (rows, length) bucket is captured once at construction,
    largest first, in one memory pool, and replayed per group; without it each group runs
    eagerly on the same padded shapes.
    """

    def __init__(
        self,
        model: Any,
        device: Any,
        plan: ComponentPlan,
        pad_token_id: int,
        length_buckets: Sequence[int],
        max_rows: int,
        cuda_graphs: bool = True,
    ) -> None:
        import torch

        self.torch = torch
        self.model, self.device, self.plan = model, device, plan
        self.pad_token_id = pad_token_id
        self.length_buckets = tuple(length_buckets)
        self.batch_buckets = batch_buckets(max_rows)
        self.num_labels = int(model.config.num_labels)
        self.cuda_graphs = cuda_graphs and device.type == "cuda"
        pinned = device.type == "cuda"
        size = self.batch_buckets[-1] * self.length_buckets[-1]
        self.host_ids = torch.empty(size, dtype=torch.int64, pin_memory=pinned)
        self.host_mask = torch.empty(size, dtype=torch.int64, pin_memory=pinned)
        self.host_logits = torch.empty(self.batch_buckets[-1], self.num_labels, dtype=torch.float32, pin_memory=pinned)
        self.shapes: dict[tuple[int, int], _Shape] = {}
        if self.cuda_graphs:
            self._capture_all()
        else:
            self._forward(*self._static(1, self.length_buckets[0]))  # warm-up: first-call allocations

    @property
    def max_rows(self) -> int:
        return self.batch_buckets[-1]

    def _static(self, rows: int, length: int) -> tuple[Any, Any]:
        """Device inputs of one shape, some padding in them (capture must see the masked path)."""
        ids = self.torch.full((rows, length), self.pad_token_id, dtype=self.torch.int64, device=self.device)
        mask = self.torch.zeros((rows, length), dtype=self.torch.int64, device=self.device)
        mask[:, : max(1, length // 2)] = 1
        return ids, mask

    def _forward(self, ids: Any, mask: Any) -> Any:
        with self.torch.no_grad(), self.plan.context(self.device):
            return self.model(input_ids=ids, attention_mask=mask).logits.float()

    def _capture_all(self) -> None:
        torch = self.torch
        pool = torch.cuda.graph_pool_handle()
        side = torch.cuda.Stream(self.device)
        shapes = sorted(((b, n) for b in self.batch_buckets for n in self.length_buckets), key=lambda s: -s[0] * s[1])
        with torch.cuda.device(self.device):
            for rows, length in shapes:
                ids, mask = self._static(rows, length)
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(2):  # warm-up outside the capture (cuBLAS handles, lazy init)
                        self._forward(ids, mask)
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool):
                    logits = self._forward(ids, mask)
                self.shapes[(rows, length)] = _Shape(ids=ids, mask=mask, logits=logits, graph=graph)
            torch.cuda.synchronize(self.device)

    @property
    def graphs_captured(self) -> int:
        return sum(1 for s in self.shapes.values() if s.graph is not None)

    def _fill(self, id_lists: Sequence[Sequence[int]], rows: np.ndarray, shape: tuple[int, int]) -> tuple[Any, Any]:
        """Host (pinned) ids and mask of one group, padded to ``shape``; padding rows attend one token."""
        batch, length = shape
        ids = self.host_ids[: batch * length].view(batch, length)
        mask = self.host_mask[: batch * length].view(batch, length)
        np_ids, np_mask = ids.numpy(), mask.numpy()
        np_ids.fill(self.pad_token_id)
        np_mask.fill(0)
        np_mask[:, 0] = 1  # a padding row with no token to attend would be NaN in some kernels
        lengths = np.fromiter((min(len(id_lists[r]), length) for r in rows), dtype=np.int64, count=len(rows))
        real = np.arange(length) < lengths[:, None]
        np_mask[: len(rows)] = real
        np_ids[: len(rows)][real] = np.fromiter(
            (t for r, n in zip(rows, lengths) for t in id_lists[r][:n]), dtype=np.int64, count=int(lengths.sum())
        )
        return ids, mask

    def _run(self, ids: Any, mask: Any) -> Any:
        """Logits on the device for host inputs of a bucket shape."""
        shape = tuple(ids.shape)
        if self.cuda_graphs:
            static = self.shapes[shape]
            static.ids.copy_(ids, non_blocking=True)
            static.mask.copy_(mask, non_blocking=True)
            static.graph.replay()
            return static.logits
        return self._forward(ids.to(self.device, non_blocking=True), mask.to(self.device, non_blocking=True))

    def logits(self, id_lists: Sequence[Sequence[int]]) -> np.ndarray:
        """float32 [rows, labels] logits in input order."""
        out = np.empty((len(id_lists), self.num_labels), dtype=np.float32)
        if not id_lists:
            return out
        for length, group in bucket_groups([len(x) for x in id_lists], self.length_buckets, self.max_rows):
            start = 0
            for batch in row_chunks(len(group), self.batch_buckets):
                rows = group[start : start + batch]
                start += len(rows)
                logits = self._run(*self._fill(id_lists, rows, (batch, length)))
                host = self.host_logits[: len(rows)]
                host.copy_(logits[: len(rows)], non_blocking=True)
                if self.device.type == "cuda":
                    self.torch.cuda.current_stream(self.device).synchronize()
                out[rows] = host.numpy()
        return out


def prepare_classifier(directory: str, model_class: str, device: Any, plans: dict[str, ComponentPlan]) -> Any:
    """The checkpoint in ``directory`` on ``device`` with its plan applied.

    Raises RuntimeUnavailable when the plan needs what the device lacks.
    """
    check_plans(plans, device)
    model = load_pretrained(directory, model_class).to(device)
    apply_plans(model, plans, {CLASSIFIER: [model]})
    return model


def load_classifier(
    directory: str, model_class: str, device: Any, plans: dict[str, ComponentPlan], **settings: Any
) -> TorchClassifier:
    """The checkpoint in ``directory`` as a :class:`TorchClassifier` on ``device`` (``settings``:
    its constructor's). Raises RuntimeUnavailable when the plan needs what the device lacks."""
    return TorchClassifier(prepare_classifier(directory, model_class, device, plans), device, plans[CLASSIFIER], **settings)


# --- T5 ---------------------------------------------------------------------------------------


def decode_with_cache(model: Any, cache: Any, **inputs: Any) -> tuple[Any, Any]:
    """``model(**inputs)`` with a KV cache; returns (logits, the updated cache).

    transformers renamed the argument and output ``past_key_values`` to ``cache`` in 5.2x; both
    spellings are accepted so the same code runs where an older 5.x is installed (a GPU image).
    """
    import inspect

    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    out = model(**inputs, **{name: cache}, use_cache=True)
    return out.logits, getattr(out, name)


def cache_from_flat(past: Sequence[Any]) -> Any:
    """EncoderDecoderCache from flat per-layer (self key, self value, cross key, cross value)."""
    from transformers.cache_utils import EncoderDecoderCache

    return EncoderDecoderCache([tuple(past[i : i + 4]) for i in range(0, len(past), 4)])


def flat_cache(cache: Any, with_cross: bool) -> list[Any]:
    """Per layer: self key, self value[, cross key, cross value] (the declared output order)."""
    flat = []
    for layer, self_layer in enumerate(cache.self_attention_cache.layers):
        flat += [self_layer.keys, self_layer.values]
        if with_cross:
            cross = cache.cross_attention_cache.layers[layer]
            flat += [cross.keys, cross.values]
    return flat


def step_modules(model: Any) -> dict[str, Any]:
    """nn.Modules per T5 component with the positional signatures of the exported graphs: the
    modules the ONNX export traces and the torch runtime runs."""
    import torch
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    class Decoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, encoder_attention_mask, encoder_hidden_states):
            logits, cache = decode_with_cache(
                self.model,
                EncoderDecoderCache(DynamicCache(), DynamicCache()),
                encoder_outputs=(encoder_hidden_states,),
                attention_mask=encoder_attention_mask,
                decoder_input_ids=input_ids,
            )
            return (logits, *flat_cache(cache, with_cross=True))

    class DecoderWithPast(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, encoder_attention_mask, *past):
            cache = cache_from_flat(past)
            # Cross-attention keys/values come from the cache; the stack only reads batch,
            # length and dtype of the encoder states for its mask, so a (B, S, 1) stand-in will do.
            stand_in = encoder_attention_mask.unsqueeze(-1).to(past[2].dtype)
            logits, cache = decode_with_cache(
                self.model,
                cache,
                encoder_outputs=(stand_in,),
                attention_mask=encoder_attention_mask,
                decoder_input_ids=input_ids,
            )
            return (logits, *flat_cache(cache, with_cross=False))

    return {"encoder": Encoder().eval(), "decoder": Decoder().eval(), "decoder_with_past": DecoderWithPast().eval()}


def t5_signatures(num_layers: int) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """(input names, output names) per component, in :func:`step_modules`' argument order: the
    names the decoding program (:mod:`t5_decoding`) uses, Optimum's."""
    try:
        from tritonize_backend_t5_decoding import kv_names
    except ImportError:
        from tritonize.backends.t5_decoding import kv_names

    return {
        "encoder": (("input_ids", "attention_mask"), ("last_hidden_state",)),
        "decoder": (
            ("input_ids", "encoder_attention_mask", "encoder_hidden_states"),
            ("logits", *kv_names("present", num_layers)),
        ),
        "decoder_with_past": (
            ("input_ids", "encoder_attention_mask", *kv_names("past_key_values", num_layers)),
            ("logits", *kv_names("present", num_layers, ("decoder",))),
        ),
    }


class TorchStep:
    """One component as a step callable on a device: ``(inputs, outputs) -> {name: tensor}``.

    Host numpy inputs go to the device; outputs stay there as torch tensors in the plan's dtype.
    Floating inputs of a component cast whole (no islands) are cast to its dtype: the gate feeds
    FP32 host arrays where the served loop passes the previous step's BF16 tensors. ``blocking``
    and the awaitable call mirror the BLS step caller of the entry model, so the same decoding
    code drives either.
    """

    def __init__(self, module: Any, names: tuple[tuple[str, ...], tuple[str, ...]], device: Any, plan: ComponentPlan) -> None:
        import torch

        self.torch, self.module, self.device, self.plan = torch, module, device, plan
        self.inputs, self.outputs = names
        self.float_dtype = None if plan.keep_fp32 else plan.dtype()  # islands: autocast casts

    def _tensor(self, value: Any) -> Any:
        if isinstance(value, np.ndarray):
            value = self.torch.from_numpy(np.ascontiguousarray(value))
        if self.float_dtype is not None and value.is_floating_point():
            return value.to(self.device, self.float_dtype, non_blocking=True)
        return value.to(self.device, non_blocking=True)

    def blocking(self, inputs: dict[str, Any], outputs: list[str]) -> dict[str, Any]:
        args = [self._tensor(inputs[name]) for name in self.inputs]
        with self.torch.no_grad(), self.plan.context(self.device):
            out = self.module(*args)
        values = out if isinstance(out, tuple) else (out,)
        return {name: value for name, value in zip(self.outputs, values) if name in outputs}

    __call__ = blocking


class AsyncStep:
    """A :class:`TorchStep` awaited like a BLS call (the entry model's overlapping driver)."""

    def __init__(self, step: TorchStep) -> None:
        self.blocking = step.blocking

    async def __call__(self, inputs: dict[str, Any], outputs: list[str]) -> dict[str, Any]:
        return self.blocking(inputs, outputs)


def load_t5_steps(directory: str, model_class: str, device: Any, plans: dict[str, ComponentPlan]) -> dict[str, TorchStep]:
    """The checkpoint in ``directory`` as one :class:`TorchStep` per T5 component on ``device``.

    Raises RuntimeUnavailable when the plans need what the device lacks.
    """
    check_plans(plans, device)
    model = load_pretrained(directory, model_class).to(device)
    keep_logits_fp32(model, plans, ("decoder", "decoder_with_past"))
    decoder = [model.decoder, model.lm_head]
    apply_plans(model, plans, {"encoder": [model.encoder], "decoder": decoder, "decoder_with_past": decoder})
    modules = step_modules(model)
    names = t5_signatures(int(model.config.num_decoder_layers))
    return {c: TorchStep(modules[c], names[c], device, plans[c]) for c in T5_COMPONENTS}


def on_host(step: Callable[[dict[str, Any], list[str]], dict[str, Any]]) -> Callable[[dict[str, Any], list[str]], dict[str, Any]]:
    """``step`` with float32 numpy outputs: how the accuracy gate compares it with ONNX Runtime."""

    def run(inputs: dict[str, Any], outputs: list[str]) -> dict[str, Any]:
        return {k: v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy() for k, v in step(inputs, outputs).items()}

    return run
