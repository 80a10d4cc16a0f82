"""Entry model of a T5 deployment: a BLS loop that tokenizes, encodes, decodes greedily, scores labels.

Why BLS: generation is a data-dependent loop, which an ensemble cannot express. The engine
steps (encoder, decoder, decoder-with-past) are separate Triton models with dynamic
batching, so the calls of several requests and instances are merged there.

Per ``execute()``: all requests are tokenized in one ``encode_batch``; requests are grouped by
length bucket (CPU cost follows padded tokens); per group one encoder call, then either greedy
decoding with the KV cache (``GENERATED_TEXT``, ``OUTPUT_IDS``) or label scoring (``LABEL``,
``SCORE``, ``PROBABILITIES``), or both, as the requests asked. Greedy rows are independent,
so a group decodes to its largest ``max_new_tokens`` and each row is cut at its own.

Why ``async def execute``: the groups of one ``execute()`` (and decoding and scoring within a
group) run concurrently with ``await request.async_exec()``, so their calls reach the engine
steps together and are batched there instead of queueing one after another. A lone program
(one group, one kind of output) calls ``exec()`` instead: nothing to overlap, one thread hop
less per step. Several instances (``generate_instances`` in the spec) overlap whole
``execute()`` calls.

Where step outputs live (config parameter ``step_memory``): ``cpu`` asks for them in host
memory as numpy (embedded and cpu targets); ``gpu`` asks for GPU memory
(``PreferredMemory(TRITONSERVER_MEMORY_GPU, device)``) and takes them as torch tensors through
DLPack, and passes them back to the next step the same way, so the KV cache stays on the GPU;
only the chosen token ids come to the host. It is not zero copy: the Python backend copies each
GPU tensor of a BLS request, device to device, into a buffer the server allocates, from Triton's
CUDA memory pool while the pool has room (python_backend r26.07 ``src/pb_stub.cc``,
``PbMemory::CopyBuffer``); hence the gpu target sizes that pool (``[server]
cuda_memory_pool_mib`` -> ``--cuda-memory-pool-byte-size``; Triton's default is 64 MiB).

Which GPU: on the gpu target the entry model's instances are ``KIND_GPU``, one group per GPU,
and each instance keeps its torch work and asks for its step outputs on its own device
(``model_instance_device_id``); with several GPUs nothing is pinned to GPU 0.

With a PyTorch runtime (config parameter ``runtime``: ``torch-cuda`` / ``torch-cpu``) there are
no engine steps: the entry model runs the three components itself, in PyTorch on its instance's
device (:mod:`tritonize.backends.torch_models`), through the same decoding program; the KV cache
never leaves the process.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

try:
    import tritonize_backend_t5_decoding as t5_decoding
    from tritonize_backend_common import LABELS_FILE, RequestError, error_response, model_parameters, read_labels
    from tritonize_backend_tokenize_step import TokenizerSettings, decode_texts, load_tokenizer, pad_batch
except ImportError:
    from tritonize.backends import t5_decoding
    from tritonize.backends.common import LABELS_FILE, RequestError, error_response, model_parameters, read_labels
    from tritonize.backends.tokenize_step import TokenizerSettings, decode_texts, load_tokenizer, pad_batch

try:
    import triton_python_backend_utils as pb_utils
except ImportError:
    pb_utils = None

GENERATION_OUTPUTS = ("GENERATED_TEXT", "OUTPUT_IDS")
SCORING_OUTPUTS = ("LABEL", "SCORE", "PROBABILITIES")
STEP_MEMORY = ("cpu", "gpu", "cpu-torch")  # values of the ``step_memory`` config parameter


def parse_max_new_tokens(value: np.ndarray | None, rows: int, default: int, limit: int) -> list[int]:
    """Per-row max_new_tokens from the optional INT32 [batch, 1] input. Raises RequestError."""
    if value is None:
        return [default] * rows
    flat = value.reshape(-1)
    if flat.shape[0] != rows:
        raise RequestError(f"max_new_tokens must have one value per TEXT row ({rows}), got {flat.shape[0]}")
    bad = [int(v) for v in flat if not 1 <= int(v) <= limit]
    if bad:
        raise RequestError(f"max_new_tokens must be in 1..{limit}, got {bad[0]}")
    return [int(v) for v in flat]


class HostMemory:
    """Step outputs in host memory as numpy (what the Python backend and ORT hand out on CPU)."""

    def __init__(self) -> None:
        self.preferred = pb_utils.PreferredMemory(pb_utils.TRITONSERVER_MEMORY_CPU, 0)
        self.description = "numpy arrays in host memory"

    def tensor(self, name: str, value: np.ndarray) -> Any:
        return pb_utils.Tensor(name, np.ascontiguousarray(value))

    def array(self, tensor: Any) -> np.ndarray:
        return tensor.as_numpy()


class TorchMemory:
    """Step outputs as torch tensors, passed in and out through DLPack.

    DLPack hands a tensor between torch and the Python backend without a copy in this process;
    the BLS call that takes it as an input still copies it on the device (see the module docstring).
    On ``cuda:N`` (``step_memory = "gpu"``) the outputs are asked for in that GPU's memory.
    On ``cpu`` (``step_memory = "cpu-torch"``, never generated by the build) the same
    DLPack plumbing runs on host memory: how the GPU path is tested on a server without a GPU.
    ``Tensor.from_dlpack`` gets the torch tensor itself (not a capsule) so the Python backend
    calls ``__dlpack__(stream=...)`` and waits for torch's pending work on that memory.
    """

    def __init__(self, device: str, device_id: int = 0) -> None:
        import torch
        from torch.utils.dlpack import from_dlpack

        gpu = device == "cuda"
        self.device = torch.device("cuda", device_id) if gpu else torch.device("cpu")
        self.from_dlpack = from_dlpack
        memory = pb_utils.TRITONSERVER_MEMORY_GPU if gpu else pb_utils.TRITONSERVER_MEMORY_CPU
        self.preferred = pb_utils.PreferredMemory(memory, device_id if gpu else 0)
        self.description = f"torch tensors on {self.device} through DLPack"

    def tensor(self, name: str, value: Any) -> Any:
        if isinstance(value, np.ndarray):  # host inputs (token ids, masks from the tokenizer)
            return pb_utils.Tensor(name, np.ascontiguousarray(value))
        return pb_utils.Tensor.from_dlpack(name, value.contiguous())

    def array(self, tensor: Any) -> Any:
        value = self.from_dlpack(tensor.to_dlpack())
        return value if value.device == self.device else value.to(self.device)


def instance_device(args: dict[str, Any]) -> int:
    """The GPU of this model instance: ``model_instance_device_id`` of a ``KIND_GPU`` instance.

    The gpu target generates ``KIND_GPU`` entry instances (one group per GPU). A ``KIND_CPU``
    instance (a hand-edited config) has no device of its own and uses GPU 0.
    """
    return int(args.get("model_instance_device_id", 0)) if args.get("model_instance_kind") == "GPU" else 0


def step_memory(kind: str, device_id: int) -> HostMemory | TorchMemory:
    """The memory policy named by the ``step_memory`` parameter. Raises ValueError for others."""
    if kind == "cpu":
        return HostMemory()
    if kind == "gpu":
        return TorchMemory("cuda", device_id)
    if kind == "cpu-torch":
        return TorchMemory("cpu")
    raise ValueError(f"step_memory must be one of {list(STEP_MEMORY)}, got {kind!r}")


class StepCaller:
    """Calls an engine step through BLS, chunked to the step's max_batch_size.

    Awaited, the chunks of one call are in flight together (``async_exec``); :meth:`blocking`
    uses ``exec`` for an ``execute()`` with nothing to overlap, which saves the thread hop of
    ``async_exec`` (measured: 0.8x throughput at concurrency 1 when every call went async).
    A failed response raises RuntimeError.
    """

    def __init__(self, model_name: str, max_batch_size: int, memory: HostMemory | TorchMemory) -> None:
        self.model_name = model_name
        self.max_batch_size = max_batch_size
        self.memory = memory

    def _requests(self, inputs: dict[str, Any], outputs: list[str]) -> list[Any]:
        rows = next(iter(inputs.values())).shape[0]
        return [
            pb_utils.InferenceRequest(
                model_name=self.model_name,
                inputs=[self.memory.tensor(k, v[start : start + self.max_batch_size]) for k, v in inputs.items()],
                requested_output_names=outputs,
                preferred_memory=self.memory.preferred,
            )
            for start in range(0, rows, self.max_batch_size)
        ]

    def _outputs(self, responses: list[Any], outputs: list[str]) -> dict[str, Any]:
        parts: list[dict[str, Any]] = []
        for response in responses:
            if response.has_error():
                raise RuntimeError(f"{self.model_name}: {response.error().message()}")
            parts.append({n: self.memory.array(pb_utils.get_output_tensor_by_name(response, n)) for n in outputs})
        if len(parts) == 1:
            return parts[0]
        return {n: t5_decoding.array_ops(parts[0][n]).concat_rows([p[n] for p in parts]) for n in outputs}

    async def __call__(self, inputs: dict[str, Any], outputs: list[str]) -> dict[str, Any]:
        responses = await t5_decoding.gather_all(*(r.async_exec() for r in self._requests(inputs, outputs)))
        return self._outputs(responses, outputs)

    def blocking(self, inputs: dict[str, Any], outputs: list[str]) -> dict[str, Any]:
        return self._outputs([r.exec() for r in self._requests(inputs, outputs)], outputs)


def bls_steps(args: dict[str, Any], params: dict[str, str]) -> tuple[StepCaller, StepCaller, StepCaller]:
    """The engine steps as BLS callers (encoder, decoder, decoder_with_past)."""
    step_batch = int(params["step_max_batch_size"])
    memory = step_memory(params.get("step_memory", "cpu"), instance_device(args))
    pb_utils.Logger.log_info(f"{args['model_name']}: step outputs as {memory.description}")
    names = ("encoder_model", "decoder_model", "decoder_with_past_model")
    encoder, decoder, decoder_with_past = (StepCaller(params[n], step_batch, memory) for n in names)
    return encoder, decoder, decoder_with_past


def torch_steps(args: dict[str, Any], params: dict[str, str], version_dir: str) -> tuple[Any, Any, Any]:
    """The three components in PyTorch in this process (torch runtimes): the checkpoint beside this
    file on the instance's device. Raises RuntimeUnavailable (Triton's load error) when the
    device cannot run the plan."""
    try:
        from tritonize_backend_torch_models import AsyncStep, instance_device, load_t5_steps, parse_plans, set_threads
    except ImportError:
        from tritonize.backends.torch_models import AsyncStep, instance_device, load_t5_steps, parse_plans, set_threads
    device = instance_device(params["device"], args)
    set_threads(int(params.get("intra_op_num_threads", "0")), device)
    steps = load_t5_steps(version_dir, params["torch_model_class"], device, parse_plans(params["torch_plans"]))
    pb_utils.Logger.log_info(f"{args['model_name']}: {params['runtime']} on {device}, KV cache stays there")
    encoder, decoder, decoder_with_past = (AsyncStep(steps[c]) for c in ("encoder", "decoder", "decoder_with_past"))
    return encoder, decoder, decoder_with_past


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        params = model_parameters(args)
        self.settings = TokenizerSettings.from_parameters(params)
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        self.tokenizer = load_tokenizer(version_dir, self.settings.max_input_length)
        self.default_new_tokens = int(params["max_new_tokens"])
        self.limit_new_tokens = int(params["max_new_tokens_limit"])
        self.eos_id = int(params["eos_token_id"])
        self.start_id = int(params["decoder_start_token_id"])
        self.num_layers = int(params["num_decoder_layers"])
        if params.get("runtime", "onnxruntime") == "onnxruntime":
            self.encoder, self.decoder, self.decoder_with_past = bls_steps(args, params)
        else:
            self.encoder, self.decoder, self.decoder_with_past = torch_steps(args, params, version_dir)
        has_labels = os.path.exists(os.path.join(args["model_repository"], LABELS_FILE))
        self.labels = read_labels(args["model_repository"]) if has_labels else []
        self.label_ids = t5_decoding.label_token_ids(self.tokenizer, self.labels) if self.labels else []

    def _parse(self, request: Any) -> tuple[list[str], list[int], set[str]]:
        text = pb_utils.get_input_tensor_by_name(request, "TEXT")
        if text is None:  # Triton 2.51 checks only the input count when a model has optional inputs
            raise RequestError("input TEXT is required")
        texts = decode_texts(text.as_numpy(), self.settings.max_text_bytes)
        tensor = pb_utils.get_input_tensor_by_name(request, "max_new_tokens")
        limits = parse_max_new_tokens(
            None if tensor is None else tensor.as_numpy(), len(texts), self.default_new_tokens, self.limit_new_tokens
        )
        wanted = set(request.requested_output_names()) or set(GENERATION_OUTPUTS + SCORING_OUTPUTS)
        if wanted & set(SCORING_OUTPUTS) and not self.labels:
            raise RequestError("this deployment has no labels: LABEL, SCORE and PROBABILITIES are unavailable")
        return texts, limits, wanted

    async def execute(self, requests: list[Any]) -> list[Any]:
        responses: list[Any] = [None] * len(requests)
        parsed: dict[int, tuple[list[str], list[int], set[str]]] = {}
        for i, request in enumerate(requests):
            try:
                parsed[i] = self._parse(request)
            except RequestError as exc:
                responses[i] = error_response(pb_utils, str(exc))
        if parsed:
            await self._run(parsed, responses)
        return responses

    async def _run(self, parsed: dict[int, tuple[list[str], list[int], set[str]]], responses: list[Any]) -> None:
        order = list(parsed)
        flat = [t for i in order for t in parsed[i][0]]
        ids = [e.ids for e in self.tokenizer.encode_batch(flat, add_special_tokens=True)]
        rows: list[tuple[int, int]] = [(i, j) for i in order for j in range(len(parsed[i][0]))]
        groups: dict[int, list[int]] = {}
        for k, seq in enumerate(ids):
            groups.setdefault(self.settings.bucket_for(len(seq)), []).append(k)
        results: dict[tuple[int, int], dict[str, Any]] = {}
        wanted = set().union(*(parsed[i][2] for i in order))
        # Several programs (groups; decoding and scoring) overlap; a lone one calls its steps blocking.
        overlap = len(groups) > 1 or bool(wanted & set(GENERATION_OUTPUTS) and wanted & set(SCORING_OUTPUTS))
        jobs = [
            self._run_group(bucket, [ids[k] for k in members], [rows[k] for k in members], parsed, results, overlap)
            for bucket, members in groups.items()
        ]
        try:
            await t5_decoding.gather_all(*jobs)
        except Exception as exc:  # noqa: BLE001 - a step failure answers every request of the call
            for i in order:
                responses[i] = error_response(pb_utils, f"generation failed: {exc}")
            return
        for i in order:
            n = len(parsed[i][0])
            responses[i] = self._response([results[(i, j)] for j in range(n)], parsed[i][2])

    async def _run_group(self, bucket, id_lists, rows, parsed, results, overlap: bool) -> None:
        input_ids, mask = pad_batch(id_lists, bucket, self.settings.pad_token_id)
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if overlap:
            hidden = (await self.encoder(feeds, ["last_hidden_state"]))["last_hidden_state"]
        else:
            hidden = self.encoder.blocking(feeds, ["last_hidden_state"])["last_hidden_state"]
        wanted = set().union(*(parsed[i][2] for i, _ in rows))
        for r in rows:
            results[r] = {}
        jobs = []
        if wanted & set(GENERATION_OUTPUTS):
            jobs.append(self._generate(hidden, mask, rows, parsed, results, overlap))
        if wanted & set(SCORING_OUTPUTS):
            jobs.append(self._score(hidden, mask, rows, results, overlap))
        await t5_decoding.gather_all(*jobs)

    async def _generate(self, hidden, mask, rows, parsed, results, overlap: bool) -> None:
        limits = [parsed[i][1][j] for i, j in rows]
        args = (hidden, mask, max(limits), self.eos_id, self.start_id, self.num_layers)
        if overlap:
            tokens = await t5_decoding.greedy_decode_async(self.decoder, self.decoder_with_past, *args)
        else:
            tokens = t5_decoding.greedy_decode(self.decoder.blocking, self.decoder_with_past.blocking, *args)
        for r, seq, limit in zip(rows, tokens, limits):
            results[r]["ids"] = seq[:limit]

    async def _score(self, hidden, mask, rows, results, overlap: bool) -> None:
        args = (hidden, mask, self.label_ids, self.start_id, self.settings.pad_token_id)
        if overlap:
            probs = await t5_decoding.score_labels_async(self.decoder, *args)
        else:
            probs = t5_decoding.score_labels(self.decoder.blocking, *args)
        for r, p in zip(rows, probs):
            results[r]["probs"] = p

    def _response(self, items: list[dict[str, Any]], wanted: set[str]) -> Any:
        tensors = []
        if "GENERATED_TEXT" in wanted:
            texts = [self.tokenizer.decode(it["ids"], skip_special_tokens=True).encode("utf-8") for it in items]
            tensors.append(pb_utils.Tensor("GENERATED_TEXT", np.array(texts, dtype=np.object_).reshape(-1, 1)))
        if "OUTPUT_IDS" in wanted:
            width = max(1, max(len(it["ids"]) for it in items))
            out = np.full((len(items), width), self.settings.pad_token_id, dtype=np.int64)
            for row, it in enumerate(items):
                out[row, : len(it["ids"])] = it["ids"]
            tensors.append(pb_utils.Tensor("OUTPUT_IDS", out))
        if wanted & set(SCORING_OUTPUTS):
            probs = np.stack([it["probs"] for it in items]).astype(np.float32)
            best = probs.argmax(axis=1)
            labels = np.array([[self.labels[b].encode("utf-8")] for b in best], dtype=np.object_)
            score = probs[np.arange(len(best)), best].reshape(-1, 1)
            for name, value in (("LABEL", labels), ("SCORE", score), ("PROBABILITIES", probs)):
                if name in wanted:
                    tensors.append(pb_utils.Tensor(name, value))
        return pb_utils.InferenceResponse(output_tensors=tensors)
