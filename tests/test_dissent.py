"""DisSent: the comma rule that extracts (S1, S2, marker) from tokenised sentences, and the task."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskmix.tasks import get_task
from taskmix.tasks.dissent import MARKERS, DisSentReader, extract_pair


@pytest.mark.parametrize("sentence, expected", [
    ("The army crossed the river at dawn , but the bridge collapsed behind them .",
     ("The army crossed the river at dawn", "the bridge collapsed behind them", "but")),
    ("He stayed in the city for years , Because his family ran a shop there !",
     ("He stayed in the city for years", "his family ran a shop there", "because")),
    # two comma-preceded markers: ambiguous, skipped
    ("The song was a hit , and the album sold well , but the tour failed badly .", None),
    # the marker is not preceded by a comma
    ("The song was a hit because the album sold very well .", None),
    # sentence-initial marker (relates to the previous sentence)
    ("But the album sold very well in the end .", None),
    # a side shorter than four words
    ("It rained , so the match was cancelled today .", None),
    ("The match went on for hours , so it ended .", None),
    # "however" is not one of the 15 markers
    ("The team played well all season , however the final was lost .", None),
])
def test_extraction_of_hand_written_sentences(sentence: str, expected) -> None:
    assert extract_pair(sentence) == expected


def test_reader_pairs_come_from_sentences_of_documents(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TASKMIX_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "wiki.raw"
    corpus.write_text(" = Rivers = \n \n The army crossed the river at dawn , but the bridge collapsed behind them . "
                      "Nobody was hurt . The men rested for a day , while the scouts looked for a ford nearby . \n")
    examples = DisSentReader()(corpus)
    assert [(e.text_a, e.text_b, MARKERS[e.label], e.uid) for e in examples] == [
        ("The army crossed the river at dawn", "the bridge collapsed behind them", "but", "0-0"),
        ("The men rested for a day", "the scouts looked for a ford nearby", "while", "0-2"),
    ]


def test_dissent_task_is_a_pair_classification_over_the_fifteen_markers() -> None:
    task = get_task("dissent")
    assert task.labels == MARKERS and len(MARKERS) == 15 and task.kind.name == "classification"
    assert task.splits["train"].path.endswith("wiki.valid.raw") and task.splits["dev"].path.endswith("wiki.test.raw")
