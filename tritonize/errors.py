"""One error hierarchy for every stage, so the CLI can print a message instead of a traceback.

Stage errors also derive from the built-in type a caller would expect (``ValueError``,
``TimeoutError``, ``ConnectionError``) so generic handlers keep working.
"""

from __future__ import annotations


class TritonizeError(Exception):
    """Root of every error tritonize raises on purpose."""


class SpecError(TritonizeError, ValueError):
    """The model spec is malformed; the message names the file and the field."""

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        super().__init__(f"{source}: field '{field}': {problem}")


class ExportError(TritonizeError):
    """Exporting a checkpoint to ONNX failed."""


class ValidationError(ExportError):
    """An exported graph disagrees with PyTorch beyond the spec's tolerance.

    Collects every failure of one validation run so a user sees all of them at once.
    """

    def __init__(self, model: str, failures: list[str]) -> None:
        self.model = model
        self.failures = list(failures)
        joined = "\n  - ".join(self.failures)
        super().__init__(f"validation of '{model}' failed:\n  - {joined}")


class EngineBuildError(TritonizeError):
    """A TensorRT engine could not be built (parser error, bad profile, no TensorRT)."""


class ProfileShapeError(EngineBuildError, ValueError):
    """A tensor's shape lies outside the optimization profile of the engine it was sent to.

    Raised by the TensorRT runner and by the rehearsal's ONNX Runtime stand-in alike, before
    anything runs, naming the engine step, the tensor, its shape and the profile's bounds.
    """

    def __init__(self, step: str, tensor: str, shape: tuple[int, ...], low: tuple[int, ...], high: tuple[int, ...]) -> None:
        self.step = step
        self.tensor = tensor
        self.shape = tuple(shape)
        self.low = tuple(low)
        self.high = tuple(high)
        super().__init__(
            f"{step}: input {tensor} has shape {list(self.shape)}, outside the engine's optimization profile "
            f"(min {list(self.low)}, max {list(self.high)})"
        )


class RuntimeUnavailableError(EngineBuildError):
    """The deployment's model runtime cannot run here (``embedded_runtime = "torch-cuda"`` without
    CUDA, a BF16 plan on a GPU without BF16); the message says what to install or change."""


class RepositoryError(TritonizeError):
    """The Triton model repository could not be generated consistently."""


class ServerError(TritonizeError):
    """The embedded Triton server could not be started or stopped."""


class ServerStartTimeout(ServerError, TimeoutError):
    """The server did not report ready in time; the message carries its log tail."""


class ClientError(TritonizeError):
    """A request to Triton failed; the message names the URL, the model and the cause."""

    def __init__(self, url: str, model: str, cause: str) -> None:
        self.url = url
        self.model = model
        self.cause = cause
        super().__init__(f"{url} model '{model}': {cause}")


class ServerUnavailableError(ClientError, ConnectionError):
    """Nothing answers at the URL (server down or not ready): safe to retry."""


class ModelNotFoundError(ClientError, LookupError):
    """The server does not serve the requested model."""


class InferenceError(ClientError):
    """The server answered the request with an error (bad input, model failure)."""


class InvalidRequestError(InferenceError, ValueError):
    """The server refused the request as malformed (HTTP 400, gRPC INVALID_ARGUMENT): fix the input, do not retry."""


class OverloadedError(ClientError):
    """The server refused the request without running it: overloaded, retry later (with backoff).

    Triton answers this way when a step's queue is full (``Exceeds maximum queue size``) or the
    request waited longer than the queue timeout (``Request timeout expired``): HTTP 503, gRPC
    UNAVAILABLE. The bound comes from the spec's ``max_queue_size`` / ``queue_timeout_us``.
    """


class AccessDeniedError(ClientError, PermissionError):
    """The endpoint is restricted (admin APIs) and the request did not carry the right key."""


class RequestTimeoutError(ClientError, TimeoutError):
    """The request did not complete within the client's timeout."""


class DeployError(TritonizeError):
    """Deployment files (compose, Kubernetes) could not be generated or checked."""


class ReleaseError(DeployError, ValueError):
    """The pinned NGC release file is malformed, inconsistent, or disagrees with the image it runs in."""


class TritonArgsError(ServerError, ValueError):
    """A tritonserver option is invalid, or the Triton version that would run it lacks the flag."""


class TuneError(TritonizeError):
    """``tritonize tune`` could not search: Model Analyzer or perf_analyzer missing or failing, no result
    under the latency budget, or a spec the search cannot write back to."""
