"""Templates: only plain {name} fields are filled; anything that could reach attributes or run code is refused."""

from __future__ import annotations

import json

import jsonschema
import pytest

from prefdata.contract.errors import PrefdataError
from prefdata.contract.resources import schema_path, templates_path
from prefdata.llm.templating import TemplateError, fill, load_templates, placeholders


@pytest.mark.parametrize("template", [
    "{user_input.__class__}",
    "{user_input.__class__.__mro__[1].__subclasses__}",
    "{user_input[0]}",
    "{0}",
    "{}",
    "{user_input!r}",
    "{user_input:>200}",
    "{user_input:{completion}}",
    "unbalanced {user_input",
])
def test_injection_is_an_error_not_an_escape(template):
    with pytest.raises(TemplateError):
        fill(template, user_input="hello", completion="x")


def test_plain_fields_are_filled_once_and_values_are_never_reinterpreted():
    text = fill("Q: {user_input}\nA: {completion} {{literal}}", user_input="{completion.__class__}", completion="42")
    assert text == "Q: {completion.__class__}\nA: 42 {literal}"
    assert placeholders("{a} and {b} and {a}") == ["a", "b", "a"]


def test_bundled_templates_validate_against_the_schema():
    data = json.loads(templates_path().read_text(encoding="utf-8"))
    jsonschema.validate(data, json.loads(schema_path("templates").read_text(encoding="utf-8")))
    assert load_templates() == data
    assert {"actor", "reward", "rlhf", "judge_pairwise"} <= set(data)


def test_a_user_file_with_injection_or_wrong_fields_is_refused_with_the_key(tmp_path):
    good = json.loads(templates_path().read_text(encoding="utf-8"))
    cases = {
        "reward": "Score {user_input} {completion.__init__.__globals__}",
        "actor": "Answer {question}",
        "rlhf": "Write {count} requests",
    }
    for key, template in cases.items():
        path = tmp_path / f"{key}.json"
        path.write_text(json.dumps({**good, key: template}), encoding="utf-8")
        with pytest.raises(PrefdataError) as caught:
            load_templates(path)
        assert caught.value.field == key and caught.value.file == str(path)
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"actor": "{user_input}"}), encoding="utf-8")
    with pytest.raises(PrefdataError, match="'reward' template is missing"):
        load_templates(missing)
