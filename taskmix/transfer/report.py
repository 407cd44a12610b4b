"""The transfer sections of a study report: the matrix, its heatmap, best candidates, seed noise, predictor quality.

Drawn from the store and, when `taskmix select --evaluate` has run, from the study's
`selection.json`; a section without data says so in one line.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from taskmix.study import plots
from taskmix.study.document import Block, Figure, Heading, Paragraph, Table, Text
from taskmix.study.report import fmt_score
from taskmix.study.store import ResultsStore
from taskmix.transfer.matrix import TransferMatrix, transfer_matrix
from taskmix.transfer.quality import CLOSE_POINTS, load_summaries, quality_table

AVERAGE = "average gain"


def gain_label(matrix: TransferMatrix, candidate: str, target: str) -> str:
    """'+1.2*' : mean gain with the significance mark of the study's delta test."""
    mean = matrix.mean(candidate, target)
    if mean is None:
        return "—"
    delta = matrix.significance.get((candidate, target))
    return f"{mean:+.1f}" + ("*" if delta is not None and delta.significant else "")


def transfer_blocks(store: ResultsStore, study_dir: Path) -> list[Block]:
    matrix = transfer_matrix(store.results(selected_only=True), store.cells())
    blocks: list[Block] = [Heading("Transfer matrix")]
    if not matrix.gains:
        return blocks + [Paragraph("No target has both a no-intermediate run and a candidate run yet.")]
    return blocks + matrix_section(matrix) + best_section(matrix) + quality_section(study_dir, matrix)


def matrix_section(matrix: TransferMatrix) -> list[Block]:
    targets = matrix.targets
    body: list[list[str | Text]] = []
    for c in matrix.candidates:
        average = matrix.average_gain(c)
        cells: list[str | Text] = [c, *(gain_label(matrix, c, t) for t in targets)]
        cells.append("—" if average is None else Text(f"{average:+.2f}", underline=average < 0))
        body.append(cells)
    body.append(["(no intermediate: score)", *(fmt_score(matrix.baseline.get(t)) for t in targets), ""])
    gains = np.array([[np.nan if (m := matrix.mean(c, t)) is None else m for t in targets]
                      for c in matrix.candidates])
    labels = [[gain_label(matrix, c, t) for t in targets] for c in matrix.candidates]
    noise = matrix.seed_noise()
    noise_text = ("one seed: the seed noise is unknown" if math.isnan(noise)
                  else f"the gain's std across the {matrix.seeds()} seeds, averaged over pairs, is {noise:.1f} points")
    return [
        Table(["candidate", *targets, AVERAGE], body),
        Paragraph(
            "Mean gain (points ×100 of target score) of training on the candidate before the target, over "
            "training on the target alone: per seed, the candidate cell's selected score minus the "
            "no-intermediate cell's, then averaged over seeds. * marks a difference the study's delta test "
            "finds significant (t-test over seeds, Bonferroni over the matrix, corrected p < 0.05). "
            f"The last column is each candidate's average gain over the targets. Seed noise: {noise_text}. "
            f"Compute of the matrix: {matrix.seconds:.0f} s of cell wall-clock time."
        ),
        Figure("transfer_matrix.png", plots.gain_heatmap(matrix.candidates, targets, gains, labels,
                                                         "Transfer gain (points)"),
               "Mean gain per candidate (rows) and target (columns); * significant"),
    ]


def best_section(matrix: TransferMatrix) -> list[Block]:
    body: list[list[str | Text]] = []
    for t in matrix.targets:
        best = matrix.best_candidate(t)
        if best is not None:
            body.append([t, best[0], gain_label(matrix, best[0], t), fmt_score(matrix.baseline.get(t))])
    return [Heading("Best candidate per target", 3),
            Table(["target", "best candidate", "gain", "no-intermediate score"], body)]


def quality_section(study_dir: Path, matrix: TransferMatrix) -> list[Block]:
    title = Heading("Predictor quality (leave one target out)", 3)
    loaded = load_summaries(study_dir)
    if loaded is None:
        return [title, Paragraph(f"Not evaluated yet: run `taskmix select --evaluate {study_dir}`.")]
    summaries, data = loaded
    header, rows = quality_table(summaries)
    noise = data.get("seed_noise")
    noise_text = "unknown (one seed)" if noise is None or math.isnan(noise) else f"{noise:.1f} points"
    return [title, Table(header, [list(r) for r in rows]), Paragraph(
        "For each target, each method ranks the other candidates without that target's column; its ranking is "
        "compared with the measured mean gains. Regret@k: points lost by taking the best of the top k instead of "
        f"the best candidate. top-3 within {CLOSE_POINTS:g} pt: targets whose top 3 holds a candidate within "
        f"{CLOSE_POINTS:g} point of the best. Cost: seconds to answer one target from scratch (reused "
        "intermediate encoders counted at their training time) over the matrix's compute. A predictor cannot be "
        f"judged more precisely than the matrix's own seed noise, here {noise_text} (evaluated on the matrix as "
        "it stood then)."
    )]
