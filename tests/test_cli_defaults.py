"""Settings are written once: every verb hands the library function the library's own defaults, and no verb imports
another verb's module.

Each verb runs through click with only its required arguments while its library function is replaced by a recorder;
what the recorder received is compared with the function's signature (and `LLMConfig`'s field defaults).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
from pathlib import Path

import pytest
from click.testing import CliRunner

from prefdata.cli import cli
from prefdata.llm.engine import LLMConfig

CLI_DIR = Path(__file__).resolve().parent.parent / "prefdata" / "cli"


class Called(Exception):
    """Raised by the recorder: the verb got as far as calling its library function."""


# verb arguments -> (module, function, parameters the CLI sets on purpose rather than leaving to the default)
VERBS = {
    ("import", "in.jsonl", "--out", "o"): ("prefdata.jobs.importer", "import_files", set()),
    ("download", "hh-rlhf", "--out", "o"): ("prefdata.jobs.download", "download_hh", set()),
    ("download", "shp", "--out", "o"): ("prefdata.jobs.download", "download_shp", set()),
    ("download", "owner/name", "--out", "o"): ("prefdata.jobs.download", "download_hub", set()),
    ("validate", "in.jsonl"): ("prefdata.jobs.validate", "validate_paths", {"out", "note"}),
    ("split", "d", "--out", "o"): ("prefdata.jobs.split", "split_datasets", set()),
    ("export", "d", "--format", "trl", "--out", "o"): ("prefdata.jobs.export", "export_dataset", set()),
    ("stats", "d"): ("prefdata.jobs.stats", "write_data_card", set()),
    ("synthesize", "--kind", "actor", "--seeds", "s.jsonl", "--n", "3", "--out", "o", "--model", "m"):
        ("prefdata.jobs.synthesize", "synthesize", {"options"}),
    ("score", "d", "--out", "o", "--model", "m"): ("prefdata.jobs.score", "score", {"options"}),
    ("generate", "d", "--out", "o", "--model", "m"): ("prefdata.jobs.generate", "generate", {"options"}),
    ("rank", "d", "--out", "o", "--by", "judge", "--model", "m"):
        ("prefdata.jobs.rank", "rank", {"options", "judges", "scorer", "config"}),
}


def record_call(monkeypatch, module_name: str, function_name: str, argv: tuple[str, ...]) -> inspect.BoundArguments:
    cli.get_command(None, argv[0])  # the verb reads the defaults when its module is imported: before the swap
    module = importlib.import_module(module_name)
    signature = inspect.signature(getattr(module, function_name))
    calls: list[inspect.BoundArguments] = []

    def recorder(*args, **kwargs):
        calls.append(signature.bind(*args, **kwargs))
        raise Called

    monkeypatch.setattr(module, function_name, recorder)
    result = CliRunner().invoke(cli, list(argv))
    assert isinstance(result.exception, Called), result.output
    return calls[0]


@pytest.mark.parametrize("argv", list(VERBS), ids=[" ".join(argv[:2]) for argv in VERBS])
def test_each_verb_passes_the_library_defaults(argv, monkeypatch):
    module_name, function_name, set_by_cli = VERBS[argv]
    bound = record_call(monkeypatch, module_name, function_name, argv)
    for name, parameter in bound.signature.parameters.items():
        if parameter.default is parameter.empty or name in set_by_cli:
            continue
        assert bound.arguments.get(name, parameter.default) == parameter.default, name
    if "config" in bound.arguments:
        assert bound.arguments["config"] == LLMConfig(model="m")


@pytest.mark.parametrize("argv", list(VERBS), ids=[" ".join(argv[:2]) for argv in VERBS])
def test_each_library_option_is_a_cli_option(argv):
    """The verb is the library function with the same options: nothing the function offers is missing on the CLI."""
    module_name, function_name, set_by_cli = VERBS[argv]
    function = getattr(importlib.import_module(module_name), function_name)
    command = cli.get_command(None, argv[0])
    names = {param.name for param in command.params} | {"mapping", "config"}  # --map/--*-column; the engine options
    offered = {name for name, p in inspect.signature(function).parameters.items() if p.default is not p.empty}
    assert offered - set_by_cli - {"workers"} <= names  # workers: the download's process count is chosen for you


def test_every_llm_setting_is_an_option_with_the_config_default():
    command = cli.get_command(None, "score")
    params = {param.name: param for param in command.params}
    for field in dataclasses.fields(LLMConfig):
        assert field.name in params, field.name
        if field.default is not dataclasses.MISSING:
            assert params[field.name].default == field.default, field.name


def test_the_judge_and_the_writer_get_their_own_temperature_when_none_is_given():
    from prefdata.jobs.score import JUDGE_TEMPERATURE
    from prefdata.jobs.synthesize import GENERATION_TEMPERATURE

    config = LLMConfig(model="m")
    assert config.temperature is None
    assert config.with_default_temperature(JUDGE_TEMPERATURE).temperature == 0.0
    assert config.with_default_temperature(GENERATION_TEMPERATURE).temperature == 0.7
    assert LLMConfig(model="m", temperature=0.3).with_default_temperature(0.0).temperature == 0.3


def test_an_option_for_another_download_target_is_refused(tmp_path):
    result = CliRunner().invoke(cli, ["download", "hh-rlhf", "--out", str(tmp_path / "o"), "--domains", "a"])
    assert result.exit_code == 2 and "--domains applies to shp, not to hh-rlhf" in result.output


@pytest.mark.parametrize("path", sorted(CLI_DIR.glob("*.py")), ids=lambda p: p.name)
def test_no_verb_module_imports_another_verb(path):
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    verbs = {f"prefdata.cli.{p.stem}" for p in CLI_DIR.glob("*_cmd.py")} - {f"prefdata.cli.{path.stem}"}
    assert not imported & verbs


@pytest.mark.parametrize("value", ["10,0", "0", "a,b"])
def test_a_bad_score_range_is_one_line(value, tmp_path, capsys):
    from prefdata.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["score", str(tmp_path), "--out", str(tmp_path / "o"), "--model", "m", "--score-range", value])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.startswith("prefdata: error:") and "\n" not in err
    assert "--score-range" in err and value in err
