"""Chat templates travel (issue #11 item 3): `prefdata train tokenizer` and every trainer checkpoint carry a Jinja chat
template that renders exactly as `prefdata.contract.render.render` does, so TRL, vLLM, OpenRLHF and `transformers
serve` prompt a model the way it was trained.

`apply_chat_template(prompt, add_generation_prompt=True)` is the generation prompt `render(prompt, None, template)`;
`apply_chat_template(prompt + [reply])` is `render(prompt, reply, template)`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the trainers need the train extra")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import trainer_helpers as helpers  # noqa: E402

from prefdata.cli import cli  # noqa: E402
from prefdata.contract.errors import PrefdataError  # noqa: E402
from prefdata.contract.render import chat_messages, render  # noqa: E402
from prefdata.contract.rules import canonical_json  # noqa: E402
from trainers.components.chat_template import CHAT_TEMPLATES, chat_template_for, with_training_template  # noqa: E402

SYSTEM_MULTI_TURN = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "How do I keep basil fresh?"},
    {"role": "assistant", "content": "Fridge or counter?"},
    {"role": "user", "content": "Counter.\nIt is warm."},
]
REPLY = "Stand it in water,\nlike cut flowers."


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return helpers.train_tokenizer(tmp_path_factory.mktemp("tok"))


def _apply(tokenizer, template: str, messages: list[dict], generation: bool) -> str:
    carrying = with_training_template(tokenizer, template)
    return carrying.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)


def test_dschat_template_by_hand(tokenizer):
    expected_prompt = ("You are terse.\n\nHuman: How do I keep basil fresh?\n\nAssistant: Fridge or counter?\n\n"
                       "Human: Counter.\nIt is warm.\n\nAssistant:")
    assert _apply(tokenizer, "dschat", SYSTEM_MULTI_TURN, generation=True) == expected_prompt
    full = [*SYSTEM_MULTI_TURN, {"role": "assistant", "content": REPLY}]
    assert _apply(tokenizer, "dschat", full, generation=False) == expected_prompt + " " + REPLY


def test_chatml_template_by_hand(tokenizer):
    expected_prompt = ("<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHow do I keep basil fresh?"
                       "<|im_end|>\n<|im_start|>assistant\nFridge or counter?<|im_end|>\n<|im_start|>user\nCounter.\n"
                       "It is warm.<|im_end|>\n<|im_start|>assistant\n")
    assert _apply(tokenizer, "chatml", SYSTEM_MULTI_TURN, generation=True) == expected_prompt
    full = [*SYSTEM_MULTI_TURN, {"role": "assistant", "content": REPLY}]
    assert _apply(tokenizer, "chatml", full, generation=False) == expected_prompt + REPLY + "<|im_end|>"


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)
_ANY_TEXT = st.one_of(_TEXT, st.sampled_from(["Human: hi", "<|im_end|>", "{{ x }}", "\n\n", "中文 ok", " lead"]))


@st.composite
def _tool_exchange(draw) -> list[dict]:
    """An assistant message calling tools (content possibly empty) and a result for each call, as prefdata stores
    them: ``tool_calls`` the canonical JSON text."""
    calls = [{"id": f"c{i}", "type": "function",
              "function": {"name": draw(_TEXT), "arguments": canonical_json({"q": draw(_ANY_TEXT)})}}
             for i in range(draw(st.integers(min_value=1, max_value=2)))]
    exchange = [{"role": "assistant", "content": draw(st.one_of(st.just(""), _ANY_TEXT)),
                 "tool_calls": canonical_json(calls)}]
    for call in calls:
        result = {"role": "tool", "content": draw(_ANY_TEXT), "tool_call_id": call["id"]}
        if draw(st.booleans()):
            result["name"] = call["function"]["name"]
        exchange.append(result)
    return exchange


@st.composite
def _chats(draw) -> tuple[list[dict], str | list[dict]]:
    """A prompt as prefdata stores it (optional system message, turns with tool exchanges, ending with the user) and
    a reply: text, or a continuation (tool exchanges, then the answer); text of any script, with newlines and
    template-looking markup."""
    prompt = [{"role": "system", "content": draw(_ANY_TEXT)}] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        prompt.append({"role": "user", "content": draw(_ANY_TEXT)})
        if draw(st.booleans()):
            prompt += draw(_tool_exchange())
        prompt.append({"role": "assistant", "content": draw(_ANY_TEXT)})
    prompt.append({"role": "user", "content": draw(_ANY_TEXT)})
    if draw(st.booleans()):
        return prompt, draw(_ANY_TEXT)
    continuation = draw(_tool_exchange())
    if draw(st.booleans()):  # a continuation may open with a tool result: the assistant's turn stays empty
        continuation = continuation[1:]
    return prompt, [*continuation, {"role": "assistant", "content": draw(_ANY_TEXT)}]


@pytest.mark.parametrize("template", sorted(CHAT_TEMPLATES))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chat=_chats())
def test_template_renders_as_prefdata_does(tokenizer, template, chat):
    """Messages reach a chat template as `chat_messages` gives them (``tool_calls`` a list), as TRL and vLLM pass
    them."""
    prompt, reply = chat
    replies = [{"role": "assistant", "content": reply}] if isinstance(reply, str) else chat_messages(reply)
    assert _apply(tokenizer, template, chat_messages(prompt), generation=True) == render(prompt, None, template)
    full = [*chat_messages(prompt), *replies]
    assert _apply(tokenizer, template, full, generation=False) == render(prompt, reply, template)


def test_tool_calls_by_hand(tokenizer):
    call = '[{"function":{"arguments":"{\\"city\\":\\"Oslo\\"}","name":"weather"},"id":"c1","type":"function"}]'
    prompt = [{"role": "user", "content": "Weather?"}]
    turns = [{"role": "assistant", "content": "", "tool_calls": call},
             {"role": "tool", "content": "rain", "tool_call_id": "c1", "name": "weather"},
             {"role": "assistant", "content": "Rain."}]
    full = chat_messages(prompt + turns)
    assert _apply(tokenizer, "dschat", full, generation=False) == (
        "Human: Weather?\n\nAssistant: <tool_call>" + call[1:-1] + "</tool_call>\n\nTool (weather): rain\n\n"
        "Assistant: Rain.")
    assert _apply(tokenizer, "chatml", full, generation=False) == (
        "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n" + call[1:-1] +
        "\n</tool_call><|im_end|>\n<|im_start|>tool\nrain<|im_end|>\n<|im_start|>assistant\nRain.<|im_end|>")


def test_no_template_for_tokenizer_and_the_given_tokenizer_is_left_as_it_was(tokenizer):
    with pytest.raises(PrefdataError, match="no chat template for 'tokenizer'"):
        chat_template_for("tokenizer")
    assert with_training_template(tokenizer, "tokenizer") is tokenizer  # the run used the tokenizer's own template
    with_training_template(tokenizer, "chatml")
    assert tokenizer.chat_template is None  # the copy carries the template; the token cache's key is unchanged


def _run(args: list[str]) -> None:
    """``prefdata ARGS`` in this process, through click's test runner: a failure shows its output and exception."""
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, args, catch_exceptions=True)
    assert result.exit_code == 0, (result.output, result.exception)


@pytest.mark.parametrize("template", ["dschat", "chatml"])
def test_train_tokenizer_saves_the_chat_template_of_its_template(tmp_path, template):
    from transformers import AutoTokenizer

    data = helpers.write_split_dir(tmp_path / "split", {"sft_train": 16, "sft_eval": 4})
    _run(["train", "tokenizer", "--data", str(data), "--out", str(tmp_path / "tok"), "--vocab-size", "300",
          "--template", template, "--quiet"])
    loaded = AutoTokenizer.from_pretrained(tmp_path / "tok")  # as TRL, vLLM or `transformers serve` load it
    row = helpers.rows(1, seed=3)[0]
    chat = [*row["prompt"], {"role": "assistant", "content": row["chosen"]}]
    assert loaded.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True) == render(
        row["prompt"], None, template)
    assert loaded.apply_chat_template(chat, tokenize=False) == render(row["prompt"], row["chosen"], template)


def test_a_checkpoint_carries_the_template_the_run_trained_with(tmp_path, monkeypatch):
    """The tokenizer was trained for dschat; SFT trains with chatml, so its checkpoint must prompt in chatml (every
    recipe saves through `checkpoints.save_hf` with its ``--template``)."""
    from transformers import AutoTokenizer

    helpers.single_process_env(monkeypatch)

    data = helpers.write_split_dir(tmp_path / "split", {"sft_train": 8, "sft_eval": 4})
    _run(["train", "tokenizer", "--data", str(data), "--out", str(tmp_path / "tok"), "--vocab-size", "300",
          "--template", "dschat", "--quiet"])
    _run(["train", "sft", "--data", str(data), "--cache-dir", str(tmp_path / "cache"), "--dtype", "fp32",
          "--micro-batch-size", "4", "--max-steps", "1", "--quiet", "--model", "tiny-gpt2",
          "--tokenizer", str(tmp_path / "tok"), "--template", "chatml", "--out", str(tmp_path / "sft")])

    prompt = helpers.rows(1, seed=5)[0]["prompt"]
    checkpoint = AutoTokenizer.from_pretrained(tmp_path / "sft")
    assert checkpoint.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True) == render(
        prompt, None, "chatml")
    tokenizer_dir = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert tokenizer_dir.chat_template == CHAT_TEMPLATES["dschat"]  # the run did not rewrite its input


def test_train_tokenizer_learns_the_words_of_multi_message_continuations(tmp_path):
    """A /2 continuation (a tool call, its result, the answer) has no plain text to render: its messages are read."""
    from transformers import AutoTokenizer

    from prefdata.contract.row import make_row
    from prefdata.storage.dataset import DatasetWriter

    call = '[{"function":{"arguments":"{}","name":"quokkaweather"},"id":"c1","type":"function"}]'
    turns = [{"role": "assistant", "content": "", "tool_calls": call},
             {"role": "tool", "content": "zyzzyvas everywhere", "tool_call_id": "c1", "name": "quokkaweather"},
             {"role": "assistant", "content": "Expect zyzzyvas."}]
    rows = [make_row([{"role": "user", "content": f"Weather {i}?"}], turns, f"No idea {i}.", source="test/tools")
            for i in range(20)]
    with DatasetWriter(tmp_path / "split", command="test") as writer:
        for row in rows:
            writer.count_in()
            writer.write(row, "rm_train")
    _run(["train", "tokenizer", "--data", str(tmp_path / "split"), "--out", str(tmp_path / "tok"),
          "--vocab-size", "400", "--quiet"])
    vocabulary = AutoTokenizer.from_pretrained(tmp_path / "tok").get_vocab()
    assert {"Ġzyzzyvas", "quokkaweather"} <= set(vocabulary)  # words seen only in the continuation


def test_the_token_cache_key_counts_the_chat_template_only_when_it_renders(tokenizer):
    """A checkpoint gains its run's chat template: with dschat/chatml that changes no token, so the reloaded tokenizer
    keeps the cache entries of the one it was trained with; with --template tokenizer the template is the rendering."""
    from trainers.components.tokens import tokenizer_fingerprint

    carrying = with_training_template(tokenizer, "chatml")
    assert tokenizer_fingerprint(carrying, "dschat") == tokenizer_fingerprint(tokenizer, "dschat")
    assert tokenizer_fingerprint(carrying, "tokenizer") != tokenizer_fingerprint(tokenizer, "tokenizer")
