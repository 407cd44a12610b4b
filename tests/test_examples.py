"""Every shipped example validates: experiments parse, studies expand into valid cells."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskmix.config import load_experiment, parse_experiment
from taskmix.study.grid import expand, load_study

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STUDIES = {"sampling_study.yaml": 32, "stilts_study.yaml": 12}


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml") if p.name not in STUDIES))
def test_experiment_examples_parse(name):
    cfg = load_experiment(EXAMPLES / name)
    assert cfg.stages


@pytest.mark.parametrize("name,cells", sorted(STUDIES.items()))
def test_study_examples_expand(name, cells):
    spec = load_study(EXAMPLES / name)
    assert len(expand(spec, validate=lambda e: parse_experiment(dict(e, name=spec.name)))) == cells
