"""Schedules: which tasks' sub-batches make up each optimizer step of a stage.

The ways of combining tasks of seed 003 (section 3.3, Appendix A) plus Muppet-style random
sampling (seed 004).  A schedule hands out task names step by step (`next_step`), is told
how many tokens each sub-batch had (`record`, for token budgets), says whether the step
losses are summed or averaged (`reduction`), and saves/restores its whole state so a
resumed run continues with exactly the same tasks.  Tasks keep the stage's order: it is
the round-robin order of Alt and the order in which Inc and CMTL introduce tasks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from itertools import accumulate
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping, Sequence

from taskmix.errors import ConfigError
from taskmix.mixture.sampling import Sizes, build_sampler, check_sizes

if TYPE_CHECKING:
    from taskmix.mixture.config import MixtureConfig

Reduction = Literal["mean", "sum"]


def cmtl_plan(task_names: Sequence[str], total_budget: int) -> list[dict[str, int]]:
    """ERNIE's continual multi-task plan as reconstructed in seed 003, Appendix A.

    N tasks give N stages and a chunk C = T / (N (N + 1)).  In stage i (1-based) task i is
    introduced with C (i + 1), earlier tasks get C each and later ones 0.  Stage i thus
    costs 2 i C, and every task gets (N + 1) C = T / N over the whole plan.  Budgets are
    floor(k T / (N (N + 1))) for k chunks, so they never sum to more than T.
    """
    n = len(task_names)
    if n == 0:
        raise ConfigError("a CMTL plan needs at least one task")
    slots = n * (n + 1)
    if total_budget < slots:
        raise ConfigError(f"a budget of {total_budget} is too small for CMTL over {n} tasks (needs >= {slots})")
    plan = []
    for stage in range(1, n + 1):
        chunks = [1] * (stage - 1) + [stage + 1] + [0] * (n - stage)
        plan.append({task: total_budget * k // slots for task, k in zip(task_names, chunks)})
    return plan


class Schedule(ABC):
    """One stage's step-by-step choice of tasks.

    Class attributes describe the kind to the config validator: whether it takes an
    always-on task, has a budget, or samples tasks by policy.
    """

    reduction: ClassVar[Reduction] = "mean"
    always_on_rule: ClassVar[Literal["required", "optional", "forbidden"]] = "forbidden"
    budgeted: ClassVar[bool] = False
    samples: ClassVar[bool] = False

    @classmethod
    def sub_batches(cls, n_tasks: int) -> int:
        """Task batches one step takes on average, which sizes an epoch in steps."""
        return 1

    def __init__(self, mixture: MixtureConfig, task_sizes: Sizes, *, seed: int, total_steps: int | None, batch_size: int):
        check_sizes(task_sizes)
        self.always_on = mixture.always_on
        if self.always_on is not None and self.always_on not in task_sizes:
            raise ConfigError(f"always_on task {self.always_on!r} is not one of the stage's tasks {list(task_sizes)}")
        self.tasks = [task for task in task_sizes if task != self.always_on]
        if not self.tasks:
            raise ConfigError(f"schedule {mixture.schedule!r} needs a task besides always_on {self.always_on!r}")

    @property
    def finished(self) -> bool:
        """True once a budgeted schedule has spent its budget; the others run until the step limit."""
        return False

    @abstractmethod
    def next_step(self) -> list[str]:
        """Task names whose sub-batches form the next optimizer step (a name may repeat)."""

    def record(self, name: str, n_tokens: int) -> None:
        """Note the tokens of a sub-batch just trained; only token budgets use it."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned, so the next steps are those the saved run would have taken."""

    def _with_always_on(self, names: list[str]) -> list[str]:
        return names + [self.always_on] if self.always_on is not None else names


class RandomSchedule(Schedule):
    """Each step draws `tasks_per_step` tasks from the sampling policy; scaled losses are averaged (Muppet)."""

    samples = True

    def __init__(self, mixture: MixtureConfig, task_sizes: Sizes, *, seed: int, total_steps: int | None, batch_size: int):
        super().__init__(mixture, task_sizes, seed=seed, total_steps=total_steps, batch_size=batch_size)
        self._k = mixture.tasks_per_step
        self._sampler = build_sampler(mixture, task_sizes, seed, batch_size)

    def next_step(self) -> list[str]:
        return self._sampler.draw(self._k)

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self._sampler.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._sampler.load_state_dict(state["sampler"])


class AltSchedule(Schedule):
    """Alt: one task per step, round-robin in stage order."""

    def __init__(self, mixture: MixtureConfig, task_sizes: Sizes, *, seed: int, total_steps: int | None, batch_size: int):
        super().__init__(mixture, task_sizes, seed=seed, total_steps=total_steps, batch_size=batch_size)
        self._position = 0

    def next_step(self) -> list[str]:
        name = self.tasks[self._position % len(self.tasks)]
        self._position += 1
        return self._with_always_on([name])

    def state_dict(self) -> dict[str, Any]:
        return {"position": self._position}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._position = int(state["position"])


class AltPlusSchedule(AltSchedule):
    """Alt+: the other tasks alternate and the always-on task's loss is added at every step."""

    reduction = "sum"
    always_on_rule = "required"

    @classmethod
    def sub_batches(cls, n_tasks: int) -> int:
        return 2


class SumSchedule(Schedule):
    """Sum: every task at every step, losses summed (BERT's MLM + NSP)."""

    reduction = "sum"

    @classmethod
    def sub_batches(cls, n_tasks: int) -> int:
        return n_tasks

    def next_step(self) -> list[str]:
        return list(self.tasks)


class BudgetedSchedule(Schedule):
    """A schedule that follows the CMTL plan of a fixed budget in steps or tokens.

    With a step budget each step costs 1, charged to its first scheduled task; with a
    token budget each recorded sub-batch costs its tokens.  The always-on task is never
    charged.  Without an explicit budget the stage's step limit is the budget.
    """

    budgeted = True

    def __init__(self, mixture: MixtureConfig, task_sizes: Sizes, *, seed: int, total_steps: int | None, batch_size: int):
        super().__init__(mixture, task_sizes, seed=seed, total_steps=total_steps, batch_size=batch_size)
        budget = mixture.budget if mixture.budget is not None else total_steps
        if budget is None:
            raise ConfigError(f"schedule {mixture.schedule!r} needs a budget or a step limit for the stage")
        self._unit = mixture.budget_unit
        self._plan = cmtl_plan(self.tasks, budget)

    def next_step(self) -> list[str]:
        if self.finished:
            raise RuntimeError("the schedule has spent its budget; check `finished` before asking for a step")
        names = self._pick()
        if self._unit == "steps":
            self._charge(names[0], 1)
        return names

    def record(self, name: str, n_tokens: int) -> None:
        if self._unit == "tokens" and name != self.always_on:
            self._charge(name, n_tokens)

    @abstractmethod
    def _pick(self) -> list[str]:
        """The tasks of the next step, scheduled ones first and the always-on task last."""

    @abstractmethod
    def _charge(self, name: str, amount: int) -> None:
        """Spend `amount` of the budget on task `name`."""


class IncSchedule(BudgetedSchedule):
    """Inc: tasks join one by one and every joined task's loss is summed at each step.

    Seed 003 does not say when each task joins; we use the CMTL stage boundaries (task i
    joins when CMTL would introduce it), so Inc and CMTL differ only in summing versus
    alternating.  The budget is shared: every step (or every recorded token) counts.
    """

    reduction = "sum"
    always_on_rule = "optional"

    @classmethod
    def sub_batches(cls, n_tasks: int) -> int:
        return n_tasks

    def __init__(self, mixture: MixtureConfig, task_sizes: Sizes, *, seed: int, total_steps: int | None, batch_size: int):
        super().__init__(mixture, task_sizes, seed=seed, total_steps=total_steps, batch_size=batch_size)
        self._stage_ends = list(accumulate(sum(stage.values()) for stage in self._plan))
        self._spent = 0

    @property
    def finished(self) -> bool:
        return self._spent >= self._stage_ends[-1]

    def _pick(self) -> list[str]:
        joined = 1 + sum(end <= self._spent for end in self._stage_ends[:-1])
        return self._with_always_on(self.tasks[:joined])

    def _charge(self, name: str, amount: int) -> None:
        self._spent += amount

    def state_dict(self) -> dict[str, Any]:
        return {"spent": self._spent}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._spent = state["spent"]


class CmtlSchedule(BudgetedSchedule):
    """CMTL: the stages of `cmtl_plan`; a stage ends when each of its tasks has spent its budget.

    Within a stage, tasks alternate: each step goes to the task that has used the smallest
    fraction of its stage budget (ties in stage order).  Equal budgets give plain
    round-robin; the newly introduced task's larger budget is spread over the whole stage,
    so earlier tasks keep being revisited while it is learnt.
    """

    def __init__(self, mixture: MixtureConfig, task_sizes: Sizes, *, seed: int, total_steps: int | None, batch_size: int):
        super().__init__(mixture, task_sizes, seed=seed, total_steps=total_steps, batch_size=batch_size)
        self._stage = 0
        self._spent = dict.fromkeys(self.tasks, 0)

    @property
    def finished(self) -> bool:
        return self._stage == len(self._plan)

    @property
    def stage(self) -> int:
        """0-based index of the current stage (== number of stages when finished)."""
        return self._stage

    def _pick(self) -> list[str]:
        budgets = self._plan[self._stage]
        open_tasks = [task for task in self.tasks if self._spent[task] < budgets[task]]
        return self._with_always_on([min(open_tasks, key=lambda task: self._spent[task] / budgets[task])])

    def _charge(self, name: str, amount: int) -> None:
        if self.finished or name not in self._spent:
            return
        self._spent[name] += amount
        budgets = self._plan[self._stage]
        if all(self._spent[task] >= budgets[task] for task in self.tasks):
            self._stage += 1
            self._spent = dict.fromkeys(self.tasks, 0)

    def state_dict(self) -> dict[str, Any]:
        return {"stage": self._stage, "spent": dict(self._spent)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._stage = int(state["stage"])
        self._spent = {task: state["spent"][task] for task in self.tasks}


class CmtlPlusSchedule(CmtlSchedule):
    """CMTL+: CMTL over the other tasks with the always-on task's loss added at every step."""

    reduction = "sum"
    always_on_rule = "required"

    @classmethod
    def sub_batches(cls, n_tasks: int) -> int:
        return 2


SCHEDULES: dict[str, type[Schedule]] = {
    "random": RandomSchedule,
    "alt": AltSchedule,
    "alt_plus": AltPlusSchedule,
    "sum": SumSchedule,
    "inc": IncSchedule,
    "cmtl": CmtlSchedule,
    "cmtl_plus": CmtlPlusSchedule,
}


def build_schedule(
    mixture: MixtureConfig,
    task_sizes: Sizes,
    seed: int,
    total_steps: int | None = None,
    batch_size: int = 1,
) -> Schedule:
    """The stage's schedule.  `task_sizes` are training-set sizes in stage order; `batch_size`
    turns them into batch counts for natural (concatenate-and-shuffle) sampling."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return SCHEDULES[mixture.schedule](mixture, task_sizes, seed=seed, total_steps=total_steps, batch_size=batch_size)


def sub_batches_per_step(mixture: MixtureConfig, n_tasks: int) -> int:
    """How many task batches one optimizer step consumes on average (sizes an epoch in steps)."""
    if mixture.batching == "heterogeneous":
        return mixture.tasks_per_step
    return SCHEDULES[mixture.schedule].sub_batches(n_tasks)
