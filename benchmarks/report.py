"""The benchmark's Markdown: absolute numbers first, then each goal's ratio and whether it is met."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GIB = 1024.0
CONFIG_LABELS = {
    "taskmix": "taskmix (StageTrainer, bf16 where native)",
    "trainer_defaults": "Trainer, run_glue defaults (pad 128, fp32)",
    "trainer_best": "Trainer, best (dynamic pad, group_by_length, bf16, fused AdamW)",
    "bare": "bare PyTorch loop (grouped, bf16, fused AdamW)",
}


@dataclass
class Goal:
    name: str
    value: float
    target: float
    higher_is_better: bool
    unit: str = "×"

    @property
    def met(self) -> bool:
        return self.value >= self.target if self.higher_is_better else self.value < self.target

    def row(self) -> str:
        sign = "≥" if self.higher_is_better else "<"
        return f"| {self.name} | {self.value:.2f}{self.unit} | {sign} {self.target:g}{self.unit} | {'yes' if self.met else 'no'} |"


def fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def throughput_table(runs: dict[str, Any], tasks: list[str]) -> list[str]:
    lines = ["| configuration | task | timed steps | train ex/s | train padded tok/s | eval ex/s | peak RSS (MiB) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for key, label in CONFIG_LABELS.items():
        run = runs[key]
        for task in tasks:
            r = run["result"][task]
            lines.append(f"| {label} | {task} | {r['steps']} | {fmt(r['train_ex_s'])} | {fmt(r['train_tok_s'], 0)} "
                         f"| {fmt(r.get('eval_ex_s'))} | {fmt(run['peak_rss_mib'], 0)} |")
    return lines


def each(values: list[float]) -> str:
    """A mean's rounds, in the order they ran."""
    return f" ({', '.join(fmt(v) for v in values)})" if len(values) > 1 else ""


def timing(run: dict[str, Any], key: str = "wall_seconds") -> str:
    return fmt(run[key]) + each(run[f"each_{key}"])


def pipeline_table(res: dict[str, Any]) -> list[str]:
    mix = res["mixture"]["result"]
    return [
        "| measurement | value (mean; each round in brackets) |", "|---|---:|",
        f"| STILTs SNLI→RTE end to end, `taskmix run` (s) | {timing(res['stilts_taskmix'])} |",
        f"| STILTs SNLI→RTE end to end, Trainer best (s) | {timing(res['stilts_trainer'])} |",
        f"| 5-task mixture train ex/s | {fmt(mix['mixture']['train_ex_s'])} |",
        f"| same steps priced at single-task speed, ex/s | {fmt(mix['single_matched_ex_s'])} |",
        f"| mixture steps per task | {', '.join(f'{k} {v}' for k, v in mix['task_steps'].items())} |",
        f"| one-step run, cold token cache: end of first step (s) | {timing(res['first_cold'], 'first_step_seconds')} |",
        f"| one-step run, cold token cache: whole run (s) | {timing(res['first_cold'])} |",
        f"| same, warm token cache: end of first step (s) | {timing(res['first_warm'], 'first_step_seconds')} |",
        f"| same, warm token cache: whole run (s) | {timing(res['first_warm'])} |",
        f"| 10-task mixture peak RSS, cold cache (MiB) | {fmt(res['ten_cold']['peak_rss_mib'], 0)} |",
        f"| 10-task mixture peak RSS, warm cache (MiB) | {fmt(res['ten_warm']['peak_rss_mib'], 0)} |",
    ]


def ratio(runs: dict[str, Any], a: str, b: str, field: str, tasks: list[str]) -> float:
    """The worst per-task ratio of `a` over `b` (a goal holds only if it holds on every task)."""
    return min(runs[a]["result"][t][field] / runs[b]["result"][t][field] for t in tasks)


def goals(res: dict[str, Any], tasks: list[str]) -> list[Goal]:
    mix = res["mixture"]["result"]
    return [
        Goal("taskmix train vs Trainer defaults", ratio(res, "taskmix", "trainer_defaults", "train_ex_s", tasks), 3.0, True),
        Goal("taskmix train vs Trainer best", ratio(res, "taskmix", "trainer_best", "train_ex_s", tasks), 1.0, True),
        Goal("taskmix train vs bare loop", ratio(res, "taskmix", "bare", "train_ex_s", tasks), 0.95, True),
        Goal("taskmix eval vs Trainer best", ratio(res, "taskmix", "trainer_best", "eval_ex_s", tasks), 1.5, True),
        Goal("taskmix eval vs bare inference loop", ratio(res, "taskmix", "bare", "eval_ex_s", tasks), 0.95, True),
        Goal("STILTs end to end, Trainer time / taskmix time",
             res["stilts_trainer"]["wall_seconds"] / res["stilts_taskmix"]["wall_seconds"], 1.3, True),
        Goal("5-task mixture vs length-matched single task",
             mix["mixture"]["train_ex_s"] / mix["single_matched_ex_s"], 0.95, True),
        Goal("warm cache: command start to end of first optimizer step", res["first_warm"]["first_step_seconds"],
             5.0, False, " s"),
        Goal("10-task mixture peak RSS (worse of cold/warm)",
             max(res["ten_cold"]["peak_rss_mib"], res["ten_warm"]["peak_rss_mib"]) / GIB, 4.0, False, " GiB"),
    ]


def render(res: dict[str, Any], tasks: list[str], header: str) -> str:
    lines = [header, "", "### Throughput (batch 32, max length 128, 2 threads)", ""]
    lines += throughput_table(res, tasks)
    lines += ["", "### Pipelines, mixtures, start-up and memory", ""]
    lines += pipeline_table(res)
    lines += ["", "### Goals (ratios are the worse of the tasks measured)", "",
              "| goal | measured | target | met |", "|---|---:|---:|---|"]
    lines += [g.row() for g in goals(res, tasks)]
    return "\n".join(lines) + "\n"
