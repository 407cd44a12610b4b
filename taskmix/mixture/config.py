"""The `mixture:` block of a stage: how its tasks share the optimizer steps.

Policies are written either as a bare name (`sampling: proportional`) or as a name with
parameters (`sampling: {name: power, alpha: 0.75}`).  The accepted names and parameters
come from the registries in `sampling`, `scaling` and `schedules`, so a config can never
name something the code does not implement, and a misspelt parameter is an error rather
than silently ignored.  The defaults describe a single-task stage.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, ClassVar, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, TypeAdapter, ValidationError, model_validator

from taskmix.mixture.sampling import SAMPLING_POLICIES
from taskmix.mixture.scaling import SCALING_POLICIES
from taskmix.mixture.schedules import SCHEDULES


def _choices(names: Mapping[str, Any]) -> str:
    return ", ".join(sorted(names))


def _checked_params(what: str, name: str, fn: Callable[..., Any], params: dict[str, Any]) -> dict[str, Any]:
    """Validate `params` against the keyword-only parameters (and their annotations) of `fn`."""
    accepted = {
        p.name: p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.kind is p.KEYWORD_ONLY
    }
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        takes = f"takes only {sorted(accepted)}" if accepted else "takes no parameters"
        raise ValueError(f"{what} {name!r} {takes}; got {unknown}")
    missing = [p for p in accepted.values() if p.default is p.empty and p.name not in params]
    if missing:
        raise ValueError(f"{what} {name!r} needs {[p.name for p in missing]}")
    checked = {}
    for key, value in params.items():
        try:
            checked[key] = TypeAdapter(accepted[key].annotation).validate_python(value)
        except ValidationError as err:
            raise ValueError(f"{what} {name!r}, {key}: {err.errors()[0]['msg']}") from None
    return checked


class PolicySpec(BaseModel):
    """A registered policy name plus its parameters (stored as the model's extra fields)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    what: ClassVar[str]

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        if isinstance(data, str):
            data = {"name": data}
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
            return data  # let pydantic report the missing name / wrong type
        params = {k: v for k, v in data.items() if k != "name"}
        functions = cls.functions()
        fn = functions.get(data["name"])
        if fn is None:
            raise ValueError(f"unknown {cls.what} {data['name']!r}; choose one of: {_choices(functions)}")
        return {"name": data["name"], **_checked_params(cls.what, data["name"], fn, params)}

    @classmethod
    def functions(cls) -> Mapping[str, Callable[..., Any]]:
        """Registered policy name -> the function whose keyword-only parameters the policy takes."""
        raise NotImplementedError

    @property
    def params(self) -> dict[str, Any]:
        """The policy's parameters, as keyword arguments for its function."""
        return dict(self.model_extra or {})


class SamplingSpec(PolicySpec):
    """Which task an i.i.d. (or natural-pass) draw picks; see `sampling.SAMPLING_POLICIES`."""

    what: ClassVar[str] = "sampling policy"

    @classmethod
    def functions(cls) -> Mapping[str, Callable[..., Any]]:
        return {name: policy.weights for name, policy in SAMPLING_POLICIES.items()}


class ScalingSpec(PolicySpec):
    """The static loss weight of each task; see `scaling.SCALING_POLICIES`."""

    what: ClassVar[str] = "loss scaling"

    @classmethod
    def functions(cls) -> Mapping[str, Callable[..., Any]]:
        return SCALING_POLICIES


class MixtureConfig(BaseModel):
    """How the tasks of one stage are sampled, weighted, batched and scheduled.

    `sampling`, `batching` and `tasks_per_step` apply to the `random` schedule (k
    sub-batches per step); the other schedules fix each step's tasks themselves.  `always_on` names the task added
    to every step by the "+" schedules (MLM in seed 003).  `budget` (in `budget_unit`) is
    the total training of the budgeted schedules (inc, cmtl, cmtl_plus); left unset, it is
    the stage's step limit.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sampling: SamplingSpec = Field(default_factory=lambda: SamplingSpec(name="proportional"))
    loss_scaling: ScalingSpec = Field(default_factory=lambda: ScalingSpec(name="uniform"))
    batching: Literal["homogeneous", "heterogeneous"] = "homogeneous"
    tasks_per_step: PositiveInt = 1
    schedule: str = "random"
    always_on: str | None = None
    budget: PositiveInt | None = None
    budget_unit: Literal["steps", "tokens"] = "steps"

    @model_validator(mode="after")
    def _consistent(self) -> MixtureConfig:
        kind = SCHEDULES.get(self.schedule)
        if kind is None:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of: {_choices(SCHEDULES)}")
        if self.batching == "homogeneous" and self.tasks_per_step != 1:
            raise ValueError("tasks_per_step > 1 needs batching: heterogeneous")
        if self.batching == "heterogeneous":
            if self.tasks_per_step < 2:
                raise ValueError("batching: heterogeneous needs tasks_per_step >= 2")
            if not kind.samples:
                raise ValueError(f"batching: heterogeneous applies only to the random schedule, not {self.schedule!r}")
        if kind.always_on_rule == "required" and self.always_on is None:
            raise ValueError(f"schedule {self.schedule!r} needs always_on (the task trained at every step)")
        if kind.always_on_rule == "forbidden" and self.always_on is not None:
            raise ValueError(f"schedule {self.schedule!r} takes no always_on task")
        if not kind.budgeted and (self.budget is not None or self.budget_unit != "steps"):
            raise ValueError(f"schedule {self.schedule!r} has no budget; it runs until the stage's step limit")
        if self.budget_unit == "tokens" and self.budget is None:
            raise ValueError("budget_unit: tokens needs a budget")
        return self
