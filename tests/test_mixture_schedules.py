"""Schedules of seed 003 §3.3 / App. A, random sampling steps, resumption and config checks."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from taskmix.errors import ConfigError
from taskmix.mixture import MixtureConfig, Schedule, build_schedule, cmtl_plan, sub_batches_per_step
from taskmix.mixture.schedules import SCHEDULES

ABC = {"a": 10, "b": 20, "c": 30}
WITH_MLM = {"mlm": 1000, **ABC}


def make(task_sizes: dict[str, int] = ABC, seed: int = 0, total_steps: int | None = None, **fields: Any) -> Schedule:
    return build_schedule(MixtureConfig.model_validate(fields), task_sizes, seed=seed, total_steps=total_steps)


def run(schedule: Schedule, steps: int | None = None) -> list[list[str]]:
    """Up to `steps` steps, or until the schedule finishes."""
    out = []
    while not schedule.finished and (steps is None or len(out) < steps):
        out.append(schedule.next_step())
    return out


# Seed 003, Table 5: CMTL with 4 tasks over 200k iterations (rows = tasks, columns = stages).
TABLE_5 = [
    [20_000, 10_000, 10_000, 10_000],
    [0, 30_000, 10_000, 10_000],
    [0, 0, 40_000, 10_000],
    [0, 0, 0, 50_000],
]

# Seed 003, Table 6: CMTL with 3 tasks over 10B tokens, as printed (billions, two decimals).
TABLE_6 = [
    ["1.67B", "0.83B", "0.83B"],
    ["0", "2.5B", "0.83B"],
    ["0", "0", "3.33B"],
]


def test_cmtl_plan_reproduces_table_5() -> None:
    tasks = ["1", "2", "3", "4"]
    plan = cmtl_plan(tasks, 200_000)
    assert [[stage[task] for stage in plan] for task in tasks] == TABLE_5


def test_cmtl_plan_reproduces_table_6() -> None:
    tasks = ["1", "2", "3"]
    plan = cmtl_plan(tasks, 10_000_000_000)
    printed = [[f"{round(stage[task] / 1e9, 2):g}B" if stage[task] else "0" for stage in plan] for task in tasks]
    assert printed == TABLE_6
    assert plan[0]["1"] == 1_666_666_666 and plan[2]["3"] == 3_333_333_333  # floor(k T / (N (N + 1)))


def test_cmtl_plan_gives_every_task_an_equal_share() -> None:
    plan = cmtl_plan(list("abcde"), 3_000)
    assert [sum(stage[t] for stage in plan) for t in "abcde"] == [600] * 5
    with pytest.raises(ConfigError, match="too small for CMTL over 5 tasks"):
        cmtl_plan(list("abcde"), 29)


def test_alt_round_robin() -> None:
    schedule = make(schedule="alt")
    assert run(schedule, 7) == [["a"], ["b"], ["c"], ["a"], ["b"], ["c"], ["a"]]
    assert not schedule.finished


def test_alt_plus_adds_the_always_on_task_every_step() -> None:
    schedule = make(WITH_MLM, schedule="alt_plus", always_on="mlm")
    assert run(schedule, 4) == [["a", "mlm"], ["b", "mlm"], ["c", "mlm"], ["a", "mlm"]]
    assert schedule.reduction == "sum"


def test_sum_trains_every_task_every_step() -> None:
    schedule = make(schedule="sum")
    assert run(schedule, 3) == [["a", "b", "c"]] * 3
    assert schedule.reduction == "sum" and not schedule.finished


def test_inc_adds_tasks_at_the_cmtl_stage_boundaries() -> None:
    # T = 12, N = 3: C = 1, stages cost 2, 4, 6 steps -> b joins at step 2, c at step 6.
    schedule = make(schedule="inc", budget=12)
    assert run(schedule) == [["a"]] * 2 + [["a", "b"]] * 4 + [["a", "b", "c"]] * 6
    assert schedule.finished and schedule.reduction == "sum"


def test_inc_with_always_on_and_step_limit_as_budget() -> None:
    schedule = make(WITH_MLM, total_steps=12, schedule="inc", always_on="mlm")
    steps = run(schedule)
    assert steps[0] == ["a", "mlm"] and steps[2] == ["a", "b", "mlm"] and steps[-1] == ["a", "b", "c", "mlm"]
    assert len(steps) == 12


def test_cmtl_alternates_within_each_stage() -> None:
    # T = 12, N = 3: stage budgets {a: 2}, {a: 1, b: 3}, {a: 1, b: 1, c: 4}.
    schedule = make(schedule="cmtl", budget=12)
    assert [s[0] for s in run(schedule)] == list("aa" "abbb" "abcccc")
    assert schedule.finished


def test_cmtl_spreads_the_new_task_over_the_stage() -> None:
    # T = 24: last stage {a: 2, b: 2, c: 8}; c gets the steps where its share lags behind.
    schedule = make(schedule="cmtl", budget=24)
    steps = [s[0] for s in run(schedule)]
    assert "".join(steps[-12:]) == "abccccabcccc"


def test_cmtl_plus_adds_the_always_on_task_every_step() -> None:
    schedule = make(WITH_MLM, schedule="cmtl_plus", always_on="mlm", budget=12)
    steps = run(schedule)
    assert [s[0] for s in steps] == list("aa" "abbb" "abcccc")
    assert all(s[1:] == ["mlm"] for s in steps)
    assert schedule.reduction == "sum"


def test_cmtl_token_budget_moves_on_when_each_task_has_spent_its_tokens() -> None:
    # T = 1200 tokens, N = 2: C = 200; stage 1 {a: 400}, stage 2 {a: 200, b: 600}.
    schedule = make({"a": 5, "b": 5, "mlm": 5}, schedule="cmtl_plus", always_on="mlm", budget=1200, budget_unit="tokens")
    seen = []
    while not schedule.finished:
        names = schedule.next_step()
        seen.append(names[0])
        for name in names:
            schedule.record(name, 150)  # mlm is never charged
    assert "".join(seen) == "aaa" + "abbbab"  # 3 x 150 >= 400; then a: 300 >= 200, b: 600 >= 600
    assert schedule.stage == 2


def test_finished_schedule_refuses_more_steps() -> None:
    schedule = make(schedule="cmtl", budget=12)
    run(schedule)
    with pytest.raises(RuntimeError, match="spent its budget"):
        schedule.next_step()


RESUMABLE = [
    {"schedule": "random"},
    {"schedule": "random", "sampling": {"name": "power", "alpha": 0.75}, "batching": "heterogeneous", "tasks_per_step": 3},
    {"schedule": "random", "sampling": "natural", "batching": "heterogeneous", "tasks_per_step": 4},
    {"schedule": "alt"},
    {"schedule": "alt_plus", "always_on": "mlm"},
    {"schedule": "sum"},
    {"schedule": "inc", "budget": 300},
    {"schedule": "cmtl", "budget": 300},
    {"schedule": "cmtl_plus", "always_on": "mlm", "budget": 300},
    {"schedule": "cmtl_plus", "always_on": "mlm", "budget": 9000, "budget_unit": "tokens"},
]


def test_every_schedule_is_resumed() -> None:
    assert {fields["schedule"] for fields in RESUMABLE} == set(SCHEDULES)


@pytest.mark.parametrize("fields", RESUMABLE, ids=lambda f: "-".join(str(v) for v in f.values()))
def test_state_dict_round_trip_continues_the_same_sequence(fields: dict[str, Any]) -> None:
    def advance(schedule: Schedule, steps: int) -> list[list[str]]:
        out = []
        for i in range(steps):
            if schedule.finished:
                break
            names = schedule.next_step()
            for name in names:
                schedule.record(name, 10 + 7 * (i % 5))
            out.append(names)
        return out

    original = make(WITH_MLM, seed=11, **fields)
    advance(original, 37)
    saved = json.loads(json.dumps(original.state_dict()))
    expected = advance(original, 400)

    resumed = make(WITH_MLM, seed=11, **fields)
    resumed.load_state_dict(saved)
    assert advance(resumed, 400) == expected


def test_natural_resume_across_a_pass_boundary() -> None:
    original = make({"a": 3, "b": 4}, seed=5, schedule="random", sampling="natural")
    run(original, 9)  # one pass is 7 entries: now inside the second pass
    saved = json.loads(json.dumps(original.state_dict()))
    expected = run(original, 30)
    resumed = make({"a": 3, "b": 4}, seed=123, schedule="random", sampling="natural")
    resumed.load_state_dict(saved)
    assert run(resumed, 30) == expected


def test_build_time_errors() -> None:
    with pytest.raises(ConfigError, match="always_on task 'mlm' is not one of the stage's tasks"):
        make(schedule="alt_plus", always_on="mlm")
    with pytest.raises(ConfigError, match="needs a task besides always_on 'mlm'"):
        make({"mlm": 5}, schedule="alt_plus", always_on="mlm")
    with pytest.raises(ConfigError, match="needs a budget or a step limit"):
        make(schedule="cmtl")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"schedule": "roundrobin"}, "unknown schedule 'roundrobin'; choose one of: alt, alt_plus, cmtl, cmtl_plus, inc"),
        ({"schedule": "alt_plus"}, "schedule 'alt_plus' needs always_on"),
        ({"schedule": "cmtl_plus", "budget": 10}, "schedule 'cmtl_plus' needs always_on"),
        ({"schedule": "alt", "always_on": "mlm"}, "schedule 'alt' takes no always_on task"),
        ({"tasks_per_step": 4}, "tasks_per_step > 1 needs batching: heterogeneous"),
        ({"batching": "heterogeneous"}, "needs tasks_per_step >= 2"),
        ({"schedule": "sum", "batching": "heterogeneous", "tasks_per_step": 2}, "applies only to the random schedule"),
        ({"schedule": "random", "budget": 100}, "schedule 'random' has no budget"),
        ({"schedule": "cmtl", "budget_unit": "tokens"}, "budget_unit: tokens needs a budget"),
        ({"schedule": "cmtl", "budget": 0}, "greater than 0"),
        ({"budget_unit": "epochs"}, "'steps' or 'tokens'"),
        ({"scheduel": "alt"}, "Extra inputs are not permitted"),
    ],
)
def test_config_validation_errors(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MixtureConfig.model_validate(fields)


def test_default_config_is_a_single_task_stage() -> None:
    cfg = MixtureConfig()
    assert (cfg.schedule, cfg.batching, cfg.tasks_per_step, cfg.loss_scaling.name) == ("random", "homogeneous", 1, "uniform")


@pytest.mark.parametrize("fields", RESUMABLE, ids=lambda f: "-".join(str(v) for v in f.values()))
def test_resolved_config_round_trips(fields: dict[str, Any]) -> None:
    cfg = MixtureConfig.model_validate(fields)
    assert MixtureConfig.model_validate(json.loads(json.dumps(cfg.model_dump()))) == cfg


@pytest.mark.parametrize("fields", [
    {"schedule": "random"}, {"schedule": "alt"}, {"schedule": "sum"}, {"schedule": "alt_plus", "always_on": "mlm"},
    {"schedule": "cmtl_plus", "always_on": "mlm", "budget": 100},
])
def test_sub_batches_per_step_match_what_the_schedule_draws(fields: dict) -> None:
    """An epoch is sized by the task batches a step takes: the schedule's own count, checked against its steps."""
    schedule = make(WITH_MLM, total_steps=40, **fields)
    drawn = [len(step) for step in run(schedule, 40)]
    assert sub_batches_per_step(MixtureConfig.model_validate(fields), len(WITH_MLM)) == pytest.approx(
        np.mean(drawn))


def test_heterogeneous_batches_take_tasks_per_step() -> None:
    mixture = MixtureConfig.model_validate({"batching": "heterogeneous", "tasks_per_step": 3})
    assert sub_batches_per_step(mixture, 4) == 3
