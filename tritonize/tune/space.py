"""The search space of ``tritonize tune``, derived from the spec: what Model Analyzer may vary.

Every dimension maps to exactly one spec key of the deployment, so a chosen configuration can be
written back to the spec and the next ``tritonize build`` reproduces it. The ranges never leave
what the built repository supports:

- the engine step's ``max_batch_size`` stays inside the TensorRT profile the spec builds
  (``opt_batch_size`` .. ``max_batch_size``, :func:`tritonize.engines.profiles.axis_ranges`);
  its preferred batch sizes are the profile's opt and max (``opt_batch_size``), as
  :func:`tritonize.repository.steps.batcher` writes them;
- a Python step's ``max_batch_size`` (``python_max_batch_size``) never goes below the engine's
  ``max_batch_size`` (the spec rejects that: whole requests must merge into one execute());
- queue delays stay below the autoscaler's ``queue_time_target_us`` (the spec rejects a delay
  at or above it: the batcher's wait counts as queue time).

Model Analyzer's two search modes see different parts of it (``model_analyzer`` 1.58,
``config/generate/run_config_generator_factory.py`` and ``quick_run_config_generator.py``):
**quick** profiles the deployment's ensemble and varies each composing step's instance count
(from the list given here) and ``max_batch_size`` (one exponential range for all steps,
``run_config_search_min/max_model_batch_size``); every other field of a composing step is one
fixed value. **brute** does not take ensembles (a deployment with composing models is searched
in quick mode whatever the option says), so it profiles the deployment's batching step on its
own and sweeps the cross product of every list here, queue delays and preferred sizes included.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass

from tritonize.errors import TuneError
from tritonize.repository.classification import is_fused
from tritonize.repository.layout import StepNames
from tritonize.repository.triton_config import KIND_CPU, KIND_GPU
from tritonize.spec import ModelSpec, ServerSpec, Target


class SearchMode(str, enum.Enum):
    """Model Analyzer's ``run_config_search_mode`` values tritonize drives."""

    QUICK = "quick"
    BRUTE = "brute"


# Dimension -> the spec key it sets, per kind of step.
ENGINE_KEYS = {
    "instance_count": "instances",
    "max_batch_size": "max_batch_size",
    "max_queue_delay_us": "max_queue_delay_us",
    "opt_batch_size": "opt_batch_size",
}
PYTHON_KEYS = {
    "instance_count": "python_instances",
    "max_batch_size": "python_max_batch_size",
    "max_queue_delay_us": "python_max_queue_delay_us",
}
PYTHON_BATCH_GROWTH = 8  # a Python step may gather up to 8x the engine batch (8 full requests per execute)


@dataclass(frozen=True, kw_only=True)
class SearchBounds:
    """User limits on the search (``tritonize tune`` flags); ``None``: derived from the spec and the machine."""

    max_instances: int | None = None
    max_python_batch: int | None = None

    def instance_ceiling(self, current: int) -> int:
        """At most one instance per core by default (CPU steps), never below what the spec has now."""
        return max(current, self.max_instances or os.cpu_count() or 1)


@dataclass(frozen=True, kw_only=True)
class StepSearch:
    """One Triton model of the deployment and the values each of its dimensions may take.

    ``keys`` maps a dimension (``instance_count``, ``max_batch_size``, ``max_queue_delay_us``,
    ``opt_batch_size``) to the spec key it sets; a dimension with a single value is fixed.
    ``preferred`` pairs each ``opt_batch_size`` candidate with the ``preferred_batch_size`` list
    the repository generator writes for it (empty where the target writes none).
    """

    model: str
    kind: str
    instance_counts: tuple[int, ...]
    max_batch_sizes: tuple[int, ...]
    queue_delays_us: tuple[int, ...]
    opt_batch_sizes: tuple[int, ...] = ()
    preferred: tuple[tuple[int, ...], ...] = ()
    keys: dict[str, str]

    @property
    def searched(self) -> tuple[str, ...]:
        """The dimensions with more than one value, in a fixed order."""
        values = {
            "instance_count": self.instance_counts,
            "max_batch_size": self.max_batch_sizes,
            "max_queue_delay_us": self.queue_delays_us,
            "opt_batch_size": self.opt_batch_sizes,
        }
        return tuple(d for d, v in values.items() if len(v) > 1 and d in self.keys)


@dataclass(frozen=True, kw_only=True)
class SearchSpace:
    """What one ``tritonize tune`` run lets Model Analyzer vary, step by step.

    ``profiled`` is the model Model Analyzer measures (the ensemble in quick mode, the batching
    step in brute mode); ``steps`` are the models whose configs it varies.
    """

    deployment: str
    target: Target
    mode: SearchMode
    profiled: str
    steps: tuple[StepSearch, ...]

    def step(self, model: str) -> StepSearch:
        for step in self.steps:
            if step.model == model:
                return step
        raise TuneError(f"{model} is not a searched step of {self.deployment}; steps: {[s.model for s in self.steps]}")

    @property
    def batch_clamp(self) -> tuple[int, int]:
        """Quick mode's one ``max_batch_size`` range (min, max): the searched step's.

        Model Analyzer applies it to every composing step, so in quick mode the fixed Python steps
        of an unfused deployment run with a ``max_batch_size`` in the engine's range too.
        """
        sizes = [b for s in self.steps if "max_batch_size" in s.keys for b in s.max_batch_sizes]
        return min(sizes), max(sizes)

    @property
    def spec_keys(self) -> tuple[str, ...]:
        """The spec keys a chosen configuration may change."""
        return tuple(step.keys[d] for step in self.steps for d in step.searched)


def powers_of_two_between(low: int, high: int) -> tuple[int, ...]:
    """``low``, every power of two strictly between, and ``high``: quick mode's exponential
    ``max_batch_size`` dimension clamped to [low, high] takes exactly these values."""
    if low > high:
        raise TuneError(f"empty batch range {low}..{high}")
    values = {low, high}
    power = 1
    while power < high:
        if power > low:
            values.add(power)
        power *= 2
    return tuple(sorted(values))


def _delays(current: int, ceiling_us: int, mode: SearchMode) -> tuple[int, ...]:
    """No wait, half, the current delay and twice it, all below the autoscaler target (brute only)."""
    if mode is SearchMode.QUICK:
        return (current,)
    base = current or 500
    return tuple(sorted({d for d in (0, base // 2, current, base * 2) if d < ceiling_us}))


def _fused_step(model: ModelSpec, server: ServerSpec, mode: SearchMode, bounds: SearchBounds) -> StepSearch:
    """The embedded target's fused Python step: its instances, batch and queue delay are the Python keys."""
    ceiling = bounds.max_python_batch or max(model.python_batch, model.batching.max_batch_size * PYTHON_BATCH_GROWTH)
    if ceiling < model.batching.max_batch_size:
        raise TuneError(f"--max-python-batch {ceiling} is below {model.name}'s max_batch_size {model.batching.max_batch_size}")
    return StepSearch(
        model=StepNames(model.name).model,
        kind=KIND_CPU,
        instance_counts=tuple(range(1, bounds.instance_ceiling(model.python.python_instances) + 1)),
        max_batch_sizes=powers_of_two_between(model.batching.max_batch_size, ceiling),
        queue_delays_us=_delays(model.python.python_max_queue_delay_us, server.queue_time_target_us, mode),
        keys=dict(PYTHON_KEYS),
    )


def _engine_step(model: ModelSpec, target: Target, server: ServerSpec, mode: SearchMode, bounds: SearchBounds) -> StepSearch:
    """The engine step: batch sizes inside the profile (opt..max), preferred sizes on the gpu target."""
    gpu = target is Target.GPU
    opts = powers_of_two_between(max(1, model.batching.max_batch_size // 4), model.batching.max_batch_size) if gpu and mode is SearchMode.BRUTE else ()
    return StepSearch(
        model=StepNames(model.name).model,
        kind=KIND_GPU if gpu else KIND_CPU,
        instance_counts=tuple(range(1, bounds.instance_ceiling(model.batching.instances) + 1)),
        max_batch_sizes=powers_of_two_between(model.profile_opt_batch, model.batching.max_batch_size),
        queue_delays_us=_delays(model.batching.max_queue_delay_us, server.queue_time_target_us, mode),
        opt_batch_sizes=opts,
        preferred=tuple(tuple(sorted({o, model.batching.max_batch_size})) for o in opts),
        keys=dict(ENGINE_KEYS),
    )


def _fixed_python_step(model: ModelSpec, name: str) -> StepSearch:
    """A tokenizer / postprocess step of an unfused deployment: held at the spec's values.

    Why fixed: both share the ``python_*`` keys, and Model Analyzer would choose a count for each
    on its own; one spec key can only take one of them.
    """
    return StepSearch(
        model=name,
        kind=KIND_CPU,
        instance_counts=(model.python.python_instances,),
        max_batch_sizes=(model.python_batch,),
        queue_delays_us=(model.python.python_max_queue_delay_us,),
        keys={},
    )


def search_space(
    model: ModelSpec, target: Target, mode: SearchMode = SearchMode.QUICK, *, server: ServerSpec | None = None,
    bounds: SearchBounds | None = None,
) -> SearchSpace:  # fmt: skip
    """The search space of ``model`` on ``target``.

    Raises:
        TuneError: the deployment is not a classifier (T5 deployments are driven by a BLS loop
            whose steps Model Analyzer cannot vary apart), or a bound is outside what the spec allows.
    """
    if model.is_generative:
        raise TuneError(f"{model.name} is a {model.task.value} deployment; tritonize tune searches text-classification deployments")
    server = server or ServerSpec()
    bounds = bounds or SearchBounds()
    names = StepNames(model.name)
    if is_fused(model, target):
        fused = _fused_step(model, server, mode, bounds)
        profiled = model.name if mode is SearchMode.QUICK else fused.model
        return SearchSpace(deployment=model.name, target=target, mode=mode, profiled=profiled, steps=(fused,))
    engine = _engine_step(model, target, server, mode, bounds)
    if mode is SearchMode.BRUTE:
        return SearchSpace(deployment=model.name, target=target, mode=mode, profiled=engine.model, steps=(engine,))
    steps = (_fixed_python_step(model, names.tokenizer), engine, _fixed_python_step(model, names.postprocess))
    return SearchSpace(deployment=model.name, target=target, mode=mode, profiled=model.name, steps=steps)
