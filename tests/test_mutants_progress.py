"""Tests that kill mutants of `prefdata/pipeline/progress.py` (issue #15): the end-of-run summary line's every part,
`info` honouring ``quiet``, and the progress bar's settings (on stderr, off with ``quiet``). Manifests are written
here; the expected lines are spelled out from them by hand.

Equivalent survivors:
- `progress`'s ``file=sys.stderr`` -> ``file=None`` or left out: tqdm's own default is sys.stderr.
"""

from __future__ import annotations

from prefdata.pipeline.progress import info, progress, summary_line


def manifest(quarantined_by_reason: dict, warnings: list | None = None) -> dict:
    result = {"counts": {"records_in": 12345, "rows_out": 12000, "quarantined": sum(quarantined_by_reason.values()),
                         "quarantined_by_reason": quarantined_by_reason},
              "splits": {"train": {"rows": 11000}, "test": {"rows": 1000}}}
    if warnings is not None:
        result["warnings"] = warnings
    return result


def test_summary_line_names_rows_per_split_and_quarantine_reasons():
    assert summary_line(manifest({"duplicate": 1200, "empty_reply": 3}), "out/dir") == (
        "12,345 records in -> 12,000 rows (train 11,000, test 1,000) in out/dir; quarantined 1,203 "
        "(duplicate 1,200, empty_reply 3)")


def test_summary_line_without_quarantine_or_warnings():
    assert summary_line(manifest({}, []), "o") == (
        "12,345 records in -> 12,000 rows (train 11,000, test 1,000) in o; quarantined 0")


def test_summary_line_appends_the_warnings():
    assert summary_line(manifest({}, ["sft_eval is empty", "phase ppo is empty"]), "o").endswith(
        "in o; quarantined 0; 2 warning(s): sft_eval is empty; phase ppo is empty")


def test_info_goes_to_stderr_unless_quiet(capsys):
    info("reading 3 files")
    info("not shown", quiet=True)
    info("also not shown", True)
    assert capsys.readouterr() == ("", "reading 3 files\n")


def test_progress_bar_is_on_stderr_after_a_second_and_off_when_quiet(capsys):
    bar = progress(iter(range(3)), desc="import", total=3, unit="row")  # no len(): the total comes from the caller
    assert (bar.desc, bar.total, bar.unit, bar.disable, bar.mininterval, bar.delay) == ("import", 3, "row", False, 0.5, 1.0)
    assert bar.dynamic_ncols
    bar.refresh()  # drawn on demand, before the delay: it goes to stderr
    assert list(bar) == [0, 1, 2]
    out, err = capsys.readouterr()
    assert out == "" and "import:   0%" in err and "0/3" in err and "row" in err
    default = progress([1, 2], desc="x")
    default.refresh()
    default.close()
    assert "?rec/s" in capsys.readouterr().err  # records are the default unit
    quiet = progress([1, 2], desc="x", quiet=True)
    quiet.refresh()
    assert quiet.disable and list(quiet) == [1, 2]
    assert capsys.readouterr() == ("", "")
