"""The claims table and the run report's findings, from fixture metrics.json files."""

import json

from course_tools import claims
from course_tools.runner import LessonResult, write_report
from course_utils.results import write_metrics

HELD = {"name": "ft beats fe", "claim": "Fine-tuning beats feature extraction", "metric": "accuracy",
        "label_a": "fine-tuning", "label_b": "feature extraction", "value_a": 0.9, "value_b": 0.8,
        "difference": 0.1, "ci_low": 0.04, "ci_high": 0.16, "margin": 0.0, "held": True, "images": 384,
        "groups": 64}
NOT_HELD = dict(HELD, name="unknown beats msp", claim="The unknown class beats MSP", metric="AUROC",
                label_a="unknown class", label_b="MSP", value_a=0.91, value_b=0.9, difference=0.01,
                ci_low=-0.02, ci_high=0.04, held=False)


def _lesson(folder, lesson, findings):
    write_metrics(folder / lesson, lesson=lesson, profile="offline", dataset="synthetic-signs", arch="x",
                  epochs=1, seconds=1.0, findings=findings)


def test_claims_table_has_one_row_per_finding_and_seed_and_names_failed_lessons(tmp_path):
    for seed in (0, 1):
        _lesson(tmp_path / f"seed-{seed}", "03_fine_tuning", [HELD])
    _lesson(tmp_path / "seed-0", "04_unknown_class", [NOT_HELD])
    stopped = tmp_path / "seed-1" / "04_unknown_class"
    stopped.mkdir(parents=True)
    error = {"output_type": "error", "ename": "FindingError", "evalue": "The unknown class beats MSP: NOT held",
             "traceback": []}
    (stopped / "04_unknown_class.ipynb").write_text(json.dumps({"cells": [{"outputs": [error]}]}))
    runs = {0: tmp_path / "seed-0", 1: tmp_path / "seed-1"}
    lessons = ("03_fine_tuning", "04_unknown_class")
    rows = claims.claims_rows(runs, lessons)
    assert rows == [
        ("03_fine_tuning", "0", "Fine-tuning beats feature extraction", "fine-tuning 90.0% vs feature extraction 80.0%",
         "+10.0 pts (+4.0 pts to +16.0 pts)", "yes"),
        ("03_fine_tuning", "1", "Fine-tuning beats feature extraction", "fine-tuning 90.0% vs feature extraction 80.0%",
         "+10.0 pts (+4.0 pts to +16.0 pts)", "yes"),
        ("04_unknown_class", "0", "The unknown class beats MSP", "unknown class 0.910 vs MSP 0.900",
         "+0.010 (-0.020 to +0.040)", "NO"),
        ("04_unknown_class", "1", "lesson failed: FindingError: The unknown class beats MSP: NOT held", "", "", "NO"),
    ]
    text = claims.write_claims(runs, tmp_path / "claims.md", lessons=lessons).read_text()
    assert "| Lesson | Seed | Finding | Values | Difference (95% interval) | Held |" in text
    assert "findings held: 2 of 4" in text
    assert "| 04_unknown_class | 0 | The unknown class beats MSP | unknown class 0.910 vs MSP 0.900 |" in text


def test_claims_main_returns_failure_when_a_finding_did_not_hold(tmp_path, capsys):
    _lesson(tmp_path / "seed-0", "03_fine_tuning", [HELD])
    assert claims.main([str(tmp_path), str(tmp_path / "ok.md")]) == 1  # the other lessons wrote nothing
    assert claims.main([str(tmp_path / "none"), str(tmp_path / "x.md")]) == 2
    assert "run `make claims` first" in capsys.readouterr().err


def test_report_lists_each_lessons_findings_under_its_row(tmp_path):
    metrics = {"lesson": "03_fine_tuning", "profile": "offline", "dataset": "synthetic-signs", "arch": "x",
               "test_accuracy": 0.9, "findings": [HELD, NOT_HELD]}
    results = [LessonResult("03_fine_tuning", "passed", 12.0, metrics), LessonResult("04_unknown_class", "passed")]
    markdown, page = write_report(results, tmp_path, profile="offline", parameters={})
    lines = markdown.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("| 03_fine_tuning |"))
    assert lines[row + 1] == ("|  | finding |  |  |  | Fine-tuning beats feature extraction: fine-tuning 90.0% vs "
                              "feature extraction 80.0%; difference +10.0 pts (+4.0 pts to +16.0 pts); held: yes |  |")
    assert "The unknown class beats MSP" in lines[row + 2] and "held: NO" in lines[row + 2]
    assert lines[row + 3].startswith("| 04_unknown_class |")
    html = page.read_text()
    assert html.count('<tr class="finding">') == 2 and "held: NO" in html


def test_an_observation_that_did_not_hold_is_shown_but_does_not_fail_the_run(tmp_path):
    from course_utils.config import LESSONS
    for lesson in LESSONS:
        _lesson(tmp_path / "seed-0", lesson, [dict(NOT_HELD, headline=False)])
    assert claims.finding_cells(dict(NOT_HELD, headline=False))[-1] == "no (observation)"
    assert claims.main([str(tmp_path), str(tmp_path / "claims.md")]) == 0
