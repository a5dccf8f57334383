"""`rank --by reward-model`: a tiny reward checkpoint built here ranks the answers; batched scores equal the model's own
one-sequence scores; `split` then pairs them with the higher-scored answer as chosen."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support import write_dataset

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from trainer_helpers import ANIMALS, COLOURS, PLACES, subprocess_env, train_tokenizer  # noqa: E402

from prefdata.contract.row import make_row, row_meta  # noqa: E402
from prefdata.jobs.rank import rank  # noqa: E402
from prefdata.jobs.split import split_datasets  # noqa: E402
from prefdata.storage.dataset import iter_rows  # noqa: E402
from trainers.components.reward_scoring import RewardModelScorer, checkpoint_sha256  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A 1-layer GPT-2 reward model with a random (seeded) score head, saved as `prefdata train reward` saves one."""
    path = tmp_path_factory.mktemp("rm")
    tokenizer = train_tokenizer(path)
    config = transformers.GPT2Config(vocab_size=len(tokenizer), n_layer=1, n_head=2, n_embd=16, n_positions=256,
                                     num_labels=1, pad_token_id=tokenizer.pad_token_id,
                                     eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    transformers.GPT2ForSequenceClassification(config).save_pretrained(path)
    return path


def answers(prompts=3, k=4):
    rows = []
    for n in range(prompts):
        prompt = [{"role": "user", "content": f"Where does the {ANIMALS[n]} live ?"}]
        for i in range(k):
            words = " ".join([COLOURS[(n + i) % len(COLOURS)]] * (i + 1) + [PLACES[(n * k + i) % len(PLACES)]])
            rows.append(make_row(prompt, f"The {ANIMALS[n]} lives in the {words} .", source="generate",
                                 group=f"prompt-{n}"))
    return rows


def own_score(checkpoint, scorer, prompt, answer) -> float:
    """The checkpoint's score for one sequence, unpadded, through transformers' own sequence-classification head."""
    model = transformers.AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    ids = scorer.token_ids([(prompt, answer)])[0]
    with torch.no_grad():
        return float(model(input_ids=torch.tensor([ids])).logits[0, 0])


def test_batched_scores_equal_single_sequence_scores(checkpoint):
    scorer = RewardModelScorer(checkpoint, batch_size=3)
    items = [(row["prompt"], row["chosen"]) for row in answers(2)]
    batched = scorer.score(items)
    assert batched == pytest.approx([own_score(checkpoint, scorer, p, a) for p, a in items], abs=1e-5)
    assert scorer.token_ids(items[:1])[0][-1] == scorer.tokenizer.eos_token_id  # as the reward trainer builds it
    described = scorer.describe()
    assert described["reward_model"] == str(checkpoint) and described["reward_model_sha256"] == checkpoint_sha256(
        checkpoint) and len(described["reward_model_sha256"]) == 64


def test_ranked_by_the_reward_model_then_paired_chosen_higher(checkpoint, tmp_path):
    rows = answers()
    directory = write_dataset(tmp_path / "answers", rows)
    scorer = RewardModelScorer(checkpoint, batch_size=5)
    manifest = rank(directory, tmp_path / "ranked", by="reward-model", scorer=scorer, quiet=True)
    expected = {row["id"]: own_score(checkpoint, scorer, row["prompt"], row["chosen"]) for row in rows}
    ranked = [row for _, row in iter_rows(tmp_path / "ranked")]
    assert [r["id"] for r in ranked] == [r["id"] for r in rows]
    for row in ranked:
        meta = row_meta(row)["rank"]
        assert row["chosen_score"] == pytest.approx(expected[row["id"]], abs=1e-5)
        assert meta["by"] == "reward-model" and meta["reward_model_sha256"] == checkpoint_sha256(checkpoint)
        siblings = [expected[r["id"]] for r in rows if r["group"] == row["group"]]
        assert meta["rank"] == 1 + sum(s > expected[row["id"]] + 1e-6 for s in siblings) and meta["of"] == 4
    assert manifest["rank"]["answers"] == len(rows) and manifest["counts"]["rows_out"] == len(rows)

    split_datasets([tmp_path / "ranked"], tmp_path / "split", ratio=(0, 1, 0), eval_fraction=0, quiet=True)
    pairs = [row for _, row in iter_rows(tmp_path / "split", "rm_train")]
    assert len(pairs) == 3 * 6  # every two of the 4 answers of each prompt (distinct scores)
    for pair in pairs:
        assert pair["chosen_score"] > pair["rejected_score"]
        assert expected[row_meta(pair)["paired_from"][0]] > expected[row_meta(pair)["paired_from"][1]]


def test_cli_ranks_with_a_reward_model(checkpoint, tmp_path):
    directory = write_dataset(tmp_path / "answers", answers(1))
    done = subprocess.run([sys.executable, "-m", "prefdata.cli", "rank", str(directory), "--out", str(tmp_path / "o"),
                           "--by", "reward-model", "--reward-model", str(checkpoint), "--batch-size", "2", "-q"],
                          capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "4 records in -> 4 rows" in done.stdout
    missing = subprocess.run([sys.executable, "-m", "prefdata.cli", "rank", str(directory), "--out",
                              str(tmp_path / "o2"), "--by", "reward-model"], capture_output=True, text=True,
                             env=subprocess_env(), timeout=300)
    assert missing.returncode == 2 and "needs --reward-model" in missing.stderr and "Traceback" not in missing.stderr
