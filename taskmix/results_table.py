"""The markdown results table printed at the end of a run: pipelines × target tasks, GLUE-style."""

from __future__ import annotations

from taskmix.metrics import benchmark_score, glue_score
from taskmix.targets import TargetResult
from taskmix.tasks.base import SUPERGLUE


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def metric_cell(result: TargetResult) -> str:
    """The task score, with its metrics when there are several (e.g. MRPC acc/F1)."""
    cell = _pct(result.score)
    if len(result.metrics) > 1:
        cell += " (" + "/".join(_pct(v) for v in result.metrics.values()) + ")"
    if result.majority_rule_applied:
        cell += "†"
    return cell


def results_table(results: list[TargetResult]) -> str:
    """Rows are pipelines, columns target tasks, plus the mean of task scores (GLUE-style average)
    and, when SuperGLUE tasks are among the targets, the SuperGLUE score over them."""
    pipelines = list(dict.fromkeys(r.pipeline for r in results))
    tasks = list(dict.fromkeys(r.task for r in results))
    benchmarks = {r.task: r.benchmark for r in results}
    superglue = SUPERGLUE in benchmarks.values()
    by_key = {(r.pipeline, r.task): r for r in results}
    extra = " SuperGLUE |" if superglue else ""
    lines = [f"| pipeline | avg |{extra} " + " | ".join(tasks) + " |",
             "|---|---|" + "---|" * (len(tasks) + superglue)]
    for pipeline in pipelines:
        row = [by_key.get((pipeline, t)) for t in tasks]
        present = {r.task: r.score for r in row if r is not None}
        avg = _pct(glue_score(present)) if present else ""
        if superglue:
            score = benchmark_score(present, benchmarks, SUPERGLUE)
            avg += " | " + ("" if score is None else _pct(score))
        cells = [metric_cell(r) if r is not None else "" for r in row]
        lines.append(f"| {pipeline} | {avg} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def restarts_table(results: list[TargetResult]) -> str:
    """Restart statistics per pipeline and target: mean, std, max and degenerate runs (STILTs)."""
    lines = ["| pipeline | task | runs | mean | std | max | degenerate |", "|---|---|---|---|---|---|---|"]
    for r in results:
        s = r.summary
        lines.append(f"| {r.pipeline} | {r.task} | {s['runs']} | {_pct(s['mean'])} | {_pct(s['std'])} | "
                     f"{_pct(s['max'])} | {s['degenerate']} |")
    return "\n".join(lines)


def render(results: list[TargetResult]) -> str:
    text = "## Dev results (selected restart, ×100)\n\n" + results_table(results) + "\n"
    if any(len(r.restart_scores) > 1 for r in results):
        text += "\n## Restarts\n\n" + restarts_table(results) + "\n"
    if any(r.majority_rule_applied for r in results):
        text += "\n† below the majority-class baseline; the majority-class score is reported (WNLI rule).\n"
    return text
