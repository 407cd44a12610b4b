"""Every shipped example validates: experiments parse, studies expand into valid cells; the README's
mixture options are the ones the code accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from taskmix.config import load_experiment, parse_experiment
from taskmix.mixture.sampling import SAMPLING_POLICIES
from taskmix.mixture.scaling import SCALING_POLICIES
from taskmix.mixture.schedules import SCHEDULES
from taskmix.study.grid import expand, load_study
from taskmix.transfer.commands import check_tasks
from taskmix.transfer.spec import load_transfer

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STUDIES = {"sampling_study.yaml": 32, "stilts_study.yaml": 12, "prefinetuning.yaml": 10, "sesame_pretraining.yaml": 28}
TRANSFERS = {"transfer_matrix.yaml": 22}
README = EXAMPLES.parent / "README.md"


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml") if p.name not in STUDIES | TRANSFERS))
def test_experiment_examples_parse(name):
    cfg = load_experiment(EXAMPLES / name)
    assert cfg.stages


@pytest.mark.parametrize("name,cells", sorted(STUDIES.items()))
def test_study_examples_expand(name, cells):
    spec = load_study(EXAMPLES / name)
    assert len(expand(spec, validate=lambda e: parse_experiment(dict(e, name=spec.name)))) == cells


@pytest.mark.parametrize("name,cells", sorted(TRANSFERS.items()))
def test_transfer_examples_expand(name, cells):
    spec = load_transfer(EXAMPLES / name)
    check_tasks(spec)
    study = spec.to_study()
    assert len(expand(study, validate=lambda e: parse_experiment(dict(e, name=spec.name)))) == cells


def readme_choices(key: str) -> set[str]:
    """The names listed in the `# a | b (note) | c` comment of the README's first line setting `key`."""
    line = next(line for line in README.read_text().splitlines() if line.strip().startswith(f"{key}:"))
    return {re.sub(r"\(.*\)", "", name).strip() for name in line.split("#", 1)[1].split("|")}


@pytest.mark.parametrize("key,registry", [("sampling", SAMPLING_POLICIES), ("loss_scaling", SCALING_POLICIES),
                                          ("schedule", SCHEDULES)])
def test_readme_mixture_options_are_the_registered_ones(key, registry):
    assert readme_choices(key) == set(registry)
