"""Result files damaged after the fact: a CSV truncated or garbled under a sidecar that says "complete" is rebuilt
from its journal (never reused as is), a journal damaged in the middle does not crash the run and loses only the
examples on its damaged lines (run again), and a torn last line never swallows the next record.

One unit of the embedded model on three built-in BoolQ examples is evaluated once; each case damages a copy of it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from src.backends.session import Sessions, SessionOptions
from src.errors import UserError
from src.evaluation.unit import EvalUnit, run_unit
from src.results.journal import Journal
from src.results.naming import journal_path, meta_path
from src.tasks import get_task
from src.tasks.sources import resolve_source
from src.tasks.splits import load_task_data

NAME = "local_baseline_analysis_smollm2-135m.csv"


@pytest.fixture(scope="module")
def made(embedded_config, tmp_path_factory):
    """(results folder with one complete unit, a function running that unit again in any folder)."""
    sessions = Sessions(embedded_config, SessionOptions(cache=False, concurrency=1))
    session = sessions.session("smollm2-135m")
    task = get_task("analysis", embedded_config)
    data = load_task_data(task, resolve_source("builtin", embedded_config))

    def rerun(folder: Path):
        unit = EvalUnit("baseline", task, data, data.eval_subset(3), task.program(), folder / NAME,
                        {"kind": "baseline"})
        before = session.lm.meter.snapshot()["lm_calls"]
        summary = run_unit(unit, session, results_dir=folder, force=False, run_ctx={}, progress=False)
        return summary, session.lm.meter.snapshot()["lm_calls"] - before

    original = tmp_path_factory.mktemp("made")
    summary, calls = rerun(original)
    assert summary.n == 3 and calls == 3
    return original, rerun


@pytest.fixture
def copy(made, tmp_path):
    original, rerun = made
    folder = tmp_path / "results"
    shutil.copytree(original, folder)
    return folder, rerun, original


def _records(folder: Path) -> int:
    return journal_path(folder / NAME).read_text(errors="ignore").count('"type": "record"')


@pytest.mark.parametrize("damage", ["truncated", "garbled", "emptied"])
def test_a_damaged_csv_under_a_complete_sidecar_is_rebuilt_from_the_journal(copy, damage, capsys):
    folder, rerun, original = copy
    csv_path = folder / NAME
    text = csv_path.read_bytes()
    assert json.loads(meta_path(csv_path).read_text())["status"] == "complete"
    if damage == "truncated":
        csv_path.write_bytes(text[: len(text) // 2])
    elif damage == "garbled":
        mid = len(text) // 2
        csv_path.write_bytes(text[:mid] + b'\x00\xff"\n,,' + text[mid + 5:])
    else:
        csv_path.write_bytes(b"")
    summary, calls = rerun(folder)
    assert calls == 0 and summary.status == "reused" and summary.n == 3
    assert csv_path.read_bytes() == (original / NAME).read_bytes()  # what the journal says, byte for byte
    assert f"{NAME} was damaged" in capsys.readouterr().err


def test_sidecars_from_before_the_checksum_are_checked_by_content(copy, capsys):
    folder, rerun, original = copy
    csv_path = folder / NAME
    side = json.loads(meta_path(csv_path).read_text())
    side.pop("csv_sha256")
    meta_path(csv_path).write_text(json.dumps(side))
    intact = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    summary, calls = rerun(folder)
    assert calls == 0 and summary.status == "reused"
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == intact  # intact: nothing rewritten

    lines = csv_path.read_text().splitlines(keepends=True)
    csv_path.write_text("".join(lines[:-1]))  # the last row lost
    summary, calls = rerun(folder)
    assert calls == 0 and csv_path.read_bytes() == (original / NAME).read_bytes()
    assert "holds 2 rows for the journal's 3 records" in capsys.readouterr().err


def test_a_journal_damaged_in_the_middle_loses_only_its_damaged_lines(copy, capsys):
    folder, rerun, original = copy
    path = journal_path(folder / NAME)
    header, first, second, third = path.read_bytes().splitlines(keepends=True)
    bad_types = json.dumps({"type": "record", "record": {**json.loads(second)["record"], "score": "n/a"}}) + "\n"
    path.write_bytes(header + first + b"\xff\xfe garbage \x00\n" + b"[1, 2]\n" + b'{"type": "record", "rec\n'
                     + bad_types.encode() + third)
    (folder / NAME).unlink()
    summary, calls = rerun(folder)
    assert calls == 1 and summary.n == 3  # only the example on the damaged line was asked again
    err = capsys.readouterr().err
    assert "4 damaged line(s) skipped" in err
    archived = list((folder / ".archive").rglob(path.name))
    assert len(archived) == 1 and b"garbage" in archived[0].read_bytes()  # the damaged file is kept, not lost
    journal = Journal(path)
    journal.load()
    assert journal.damaged == 0 and not journal.torn and len(journal.records) == 3
    rows = (folder / NAME).read_text().splitlines()
    assert len(rows) == 4 and [r.split(",")[4] for r in rows[1:]] == \
        [r.split(",")[4] for r in (original / NAME).read_text().splitlines()[1:]]


def test_a_torn_last_line_never_swallows_the_next_record(copy):
    folder, rerun, _ = copy
    path = journal_path(folder / NAME)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # killed while writing the third
    (folder / NAME).unlink()
    summary, calls = rerun(folder)
    assert calls == 1 and summary.n == 3
    journal = Journal(path)
    journal.load()
    # The new record starts on a line of its own: the next run finds all three and asks nothing again.
    assert len(journal.records) == 3 and journal.damaged == 0 and not journal.torn
    assert rerun(folder)[1] == 0


def test_a_journal_whose_header_line_is_unreadable(copy):
    folder, rerun, _ = copy
    path = journal_path(folder / NAME)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b'{"type": "head\n' + b"".join(lines[1:]))
    # The sidecar rendered from these records says what they were made under: they are this unit's.
    summary, calls = rerun(folder)
    assert calls == 0 and summary.n == 3
    # Without a sidecar they are of unknown origin: refused, never adopted.
    path.write_bytes(b'{"type": "head\n' + b"".join(lines[1:]))
    meta_path(folder / NAME).unlink()
    (folder / NAME).unlink()
    with pytest.raises(UserError, match="record no settings"):
        rerun(folder)
    assert _records(folder) == 3  # and kept
