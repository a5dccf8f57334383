"""The compiled fast path of schema checks (fastjsonschema) must agree with jsonschema on every value, valid or not:
it only lets valid values skip jsonschema, so a disagreement would pass a record `validate` should refuse."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prefdata.jobs.validate_schema import RECORD_SCHEMAS, compiled_validator, load_schema, record_validator

KEYS = ["prompt", "chosen", "rejected", "user_input", "completion", "score", "role", "content", "system", "messages",
        "actor", "reward", "rlhf", "judge_pairwise", "text", "id"]
ROLES = st.sampled_from(["user", "assistant", "system", "bot", "", "User"])
TEXT = st.one_of(st.sampled_from(["", " ", "\n", "hi", "Human: a\n\nAssistant: b", "\t x"]), st.text(max_size=8))
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True), TEXT)
MESSAGE = st.fixed_dictionaries({"role": ROLES, "content": st.one_of(TEXT, SCALAR)},
                                optional={"name": TEXT, "extra": SCALAR})
VALUE = st.recursive(st.one_of(SCALAR, MESSAGE, st.lists(MESSAGE, max_size=3)),
                     lambda inner: st.one_of(st.lists(inner, max_size=3),
                                             st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
                     max_leaves=12)
RECORD = st.dictionaries(st.sampled_from(KEYS), VALUE, max_size=6)


def jsonschema_says_valid(schema, value) -> bool:
    return next(schema.validator.iter_errors(value), None) is None


@pytest.mark.parametrize("name", RECORD_SCHEMAS)
def test_every_record_schema_has_the_fast_path(name):
    assert record_validator(name).accepts is not None


@pytest.mark.parametrize("name", RECORD_SCHEMAS)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=RECORD)
def test_fast_path_agrees_with_jsonschema_on_records(name, value):
    schema = record_validator(name)
    assert schema.accepts(value) == jsonschema_says_valid(schema, value)


@pytest.mark.parametrize("name", ["templates", "manifest"])
@settings(max_examples=200, deadline=None)
@given(value=st.one_of(RECORD, VALUE))
def test_fast_path_agrees_with_jsonschema_on_documents(name, value):
    schema = compiled_validator(name)
    if schema.accepts is not None:
        assert schema.accepts(value) == jsonschema_says_valid(schema, value)


def test_a_keyword_that_means_something_else_in_draft7_gets_no_fast_path(monkeypatch):
    from prefdata.jobs.validate_schema import fast_acceptor

    assert fast_acceptor({"type": "array", "prefixItems": [{"type": "string"}]}) is None
    assert fast_acceptor({"type": "object", "properties": {"prefixItems": {"type": "string"}}}) is not None
    assert load_schema("manifest")  # the bundled documents load
