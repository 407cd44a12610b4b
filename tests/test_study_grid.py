"""Study grid expansion: cells, axes that drop stages, stable ids, prefix keys, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from taskmix.errors import ConfigError
from taskmix.study.grid import Cell, cell_id_of, expand, load_study, parse_study

BASE = {
    "encoder": "minilm",
    "stages": [
        {"name": "intermediate", "tasks": ["snli"], "max_epochs": 3},
        {"name": "target", "tasks": ["rte", "mrpc"], "separate": True, "restarts": 3},
    ],
}

STILTS_STUDY = {
    "name": "stilts",
    "base": BASE,
    "axes": {
        "intermediate": {
            "stage": "intermediate",
            "values": {
                "none": None,
                "snli": {"stages.intermediate.tasks": ["snli"]},
                "qnli": {"stages.intermediate.tasks": ["qnli"]},
            },
        }
    },
    "grid": {
        "intermediate": ["none", "snli", "qnli"],
        "seed": [1, 2],
        "stages.1.max_train_examples": [1000, None],
    },
}


def point(cell: Cell) -> tuple:
    """A cell's grid point as (intermediate, seed, target data size)."""
    return cell.fields["intermediate"], cell.fields["seed"], cell.fields["stages.1.max_train_examples"]


def test_expansion_covers_the_product_with_axis_overrides_and_stage_removal() -> None:
    cells = expand(parse_study(STILTS_STUDY))
    assert len(cells) == 3 * 2 * 2
    by_fields = {point(c): c for c in cells}
    dropped = by_fields[("none", 1, 1000)].experiment
    assert [s["name"] for s in dropped["stages"]] == ["target"]
    assert dropped["stages"][0]["max_train_examples"] == 1000  # index 1 refers to the base, before the drop
    qnli = by_fields[("qnli", 2, None)].experiment
    assert qnli["stages"][0]["tasks"] == ["qnli"] and qnli["seed"] == 2
    assert qnli["stages"][1]["max_train_examples"] is None
    assert BASE["stages"][0]["tasks"] == ["snli"]  # the base is never mutated


def test_cell_ids_are_stable_short_hashes_of_the_experiment() -> None:
    first = expand(parse_study(STILTS_STUDY))
    again = expand(parse_study(STILTS_STUDY))
    assert [c.cell_id for c in first] == [c.cell_id for c in again]
    assert len({c.cell_id for c in first}) == len(first)
    cell = first[0]
    reordered = {k: cell.experiment[k] for k in reversed(list(cell.experiment))}
    assert cell_id_of(reordered) == cell.cell_id
    assert len(cell.cell_id) == 12 and cell.config_hash.startswith(cell.cell_id)


def test_grid_points_giving_the_same_experiment_collapse() -> None:
    study = dict(STILTS_STUDY, grid={"intermediate": ["none", "snli"], "stages.intermediate.max_epochs": [1, 2]})
    cells = expand(parse_study(study))
    assert len(cells) == 3  # with the stage removed, its max_epochs no longer matters


def test_validate_hook_rejects_a_misspelt_leaf_naming_the_cell() -> None:
    def validate(experiment: dict) -> None:
        for stage in experiment["stages"]:
            if "max_epoch" in stage:
                raise ValueError("stages: unknown field 'max_epoch'")

    study = {"name": "typo", "base": BASE, "grid": {"stages.0.max_epoch": [2]}}
    with pytest.raises(ConfigError, match=r"stages.0.max_epoch.*unknown field 'max_epoch'"):
        expand(parse_study(study), validate=validate)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"colour": 1}, "colour"),
        ({"base_file": "x.yaml"}, "exactly one of"),
        ({"grid": {"intermediate": ["mnli"]}}, "not in axes.intermediate.values"),
        ({"grid": {"seed": []}}, "empty list"),
        ({"axes": {"intermediate": {"values": {"none": None}}}}, "must name the `stage`"),
    ],
)
def test_schema_errors_are_one_line_config_errors(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_study({**STILTS_STUDY, **change})
    assert "\n" not in str(err.value)


def test_base_file_is_read_relative_to_the_study_file(tmp_path: Path) -> None:
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "stilts.yaml").write_text(yaml.safe_dump(BASE))
    grid = {"stages.target.tasks": [["rte"], ["mrpc"]]}
    study = {"name": "from_file", "base_file": "experiments/stilts.yaml", "grid": grid}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    cells = expand(load_study(tmp_path / "study.yaml"))
    assert [c.experiment["stages"][1]["tasks"] for c in cells] == [["rte"], ["mrpc"]]


def test_exclude_drops_matching_grid_points():
    from taskmix.study.grid import expand, parse_study

    spec = parse_study({
        "name": "x", "base": {"stages": [{"name": "t", "tasks": ["rte"]}]},
        "grid": {"seed": [1, 2, 3], "stages.t.lr": [1e-5, 2e-5]},
        "exclude": [{"seed": 3, "stages.t.lr": 1e-5}, {"seed": 1}],
    })
    fields = [c.fields for c in expand(spec)]
    assert fields == [{"seed": 2, "stages.t.lr": 1e-5}, {"seed": 2, "stages.t.lr": 2e-5},
                      {"seed": 3, "stages.t.lr": 2e-5}]


def test_exclude_rejects_unknown_keys_and_values():
    import pytest

    from taskmix.errors import ConfigError
    from taskmix.study.grid import parse_study

    base = {"name": "x", "base": {"stages": [{"name": "t", "tasks": ["rte"]}]}, "grid": {"seed": [1, 2]}}
    with pytest.raises(ConfigError, match="not a grid key"):
        parse_study({**base, "exclude": [{"sed": 1}]})
    with pytest.raises(ConfigError, match="not a value of grid.seed"):
        parse_study({**base, "exclude": [{"seed": 7}]})


def test_one_dotted_path_setter_serves_set_overrides_and_grids() -> None:
    """Stages by name or index, new leaves allowed; missing mappings made only when asked (`--set`)."""
    from taskmix.config import apply_override, set_path

    data = {"stages": [{"name": "inter"}, {"name": "target", "lr": 1e-5}]}
    set_path(data, "stages.target.lr", 2e-5, where="grid path")
    set_path(data, "stages.-2.max_steps", 5, where="grid path")
    assert data["stages"] == [{"name": "inter", "max_steps": 5}, {"name": "target", "lr": 2e-5}]
    with pytest.raises(ConfigError, match="grid path: no field 'encoder'"):
        set_path(data, "encoder.name", "x", where="grid path")
    apply_override(data, "encoder.name=bert-base-uncased")
    assert data["encoder"] == {"name": "bert-base-uncased"}
    with pytest.raises(ConfigError, match=r"--set stages.final.lr: no item named 'final'"):
        apply_override(data, "stages.final.lr=1")
    with pytest.raises(ConfigError, match=r"index 5 out of range \(2 items\)"):
        apply_override(data, "stages.5.lr=1")
