"""`trainers.runtime` piece by piece: options generated from the config dataclasses, the DeepSpeed config, the metrics
log and summary line, loaders, checkpoints and the process start. Quick: no model is trained here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import click
import pytest

pytest.importorskip("deepspeed", reason="the trainers need the train extra")

import torch  # noqa: E402

from prefdata.contract.errors import PrefdataError  # noqa: E402
from trainers.recipes.ppo import PPOConfig, ppo_command  # noqa: E402
from trainers.recipes.reward import RewardConfig, reward_command  # noqa: E402
from trainers.recipes.sft import SFTConfig, sft_command  # noqa: E402
from trainers.recipes.tokenizer import TokenizerConfig, tokenizer_command  # noqa: E402
from trainers.runtime import checkpoints, distributed, engine, metrics, options  # noqa: E402
from trainers.runtime.ds_config import CONFIG_DIR, deepspeed_config, frozen_config  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RECIPES = [(sft_command, SFTConfig), (reward_command, RewardConfig), (ppo_command, PPOConfig)]


# -------------------------------------------------------------------------------------------------------- options


@pytest.mark.parametrize(("command", "config_class"), [*RECIPES, (tokenizer_command, TokenizerConfig)])
def test_command_line_defaults_are_the_config_defaults(command, config_class, tmp_path):
    required = {"data": str(tmp_path), "out": str(tmp_path / "out")}
    if "model" in {f.name for f in fields(config_class)}:
        required["model"] = "tiny-gpt2"
    argv = [arg for name, value in required.items() for arg in (f"--{name}", value)]
    params = command.make_context(command.name, argv).params
    params.pop("local_rank", None)
    assert params == asdict(config_class(**required))  # every option, every default: one definition


@pytest.mark.parametrize(("command", "config_class"), RECIPES)
def test_every_config_field_is_an_option_and_local_rank_is_hidden(command, config_class):
    by_name = {p.name: p for p in command.params}
    assert set(by_name) - {"help"} == {f.name for f in fields(config_class)} | {"local_rank"}
    assert by_name["local_rank"].hidden and "--local_rank" in by_name["local_rank"].opts
    assert by_name["data"].required and by_name["model"].required and not by_name["tokenizer"].required
    assert by_name["quiet"].is_flag and "-q" in by_name["quiet"].opts
    assert list(by_name["dtype"].type.choices) == list(options.DTYPES)


def test_options_reject_what_the_config_does_not_allow(tmp_path):
    base = ["--data", str(tmp_path), "--model", "m", "--out", str(tmp_path / "o")]
    with pytest.raises(click.BadParameter):
        sft_command.make_context("sft", [*base, "--truncate", "middle"])
    with pytest.raises(click.BadParameter):
        sft_command.make_context("sft", [*base, "--zero-stage", "4"])
    with pytest.raises(click.MissingParameter):
        sft_command.make_context("sft", base[2:])  # no --data


def test_config_from_options_hands_the_launchers_local_rank_to_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    cfg = options.config_from_options(SFTConfig, {"data": "d", "model": "m", "out": "o", "local_rank": 3})
    assert os.environ["LOCAL_RANK"] == "3" and cfg == SFTConfig(data="d", model="m", out="o")


def test_setting_without_default_is_required_and_a_bool_is_a_flag():
    @dataclass
    class Probe:
        name: str = options.setting(help="required")
        loud: bool = options.setting(False, "a flag")
        level: int | None = options.setting(None, "optional int")

    @click.command()
    @options.options_from(Probe, launcher=False)
    def probe(**kw):
        return Probe(**kw)

    assert probe.main(["--name", "x", "--loud", "--level", "2"], standalone_mode=False) == Probe("x", True, 2)
    assert probe.main(["--name", "x"], standalone_mode=False) == Probe("x", False, None)
    with pytest.raises(click.MissingParameter):
        probe.main([], standalone_mode=False)


# ---------------------------------------------------------------------------------------------- DeepSpeed config


def _cfg(**overrides) -> SFTConfig:
    return SFTConfig(data="d", model="m", out="o", **overrides)


def test_deepspeed_config_is_the_shipped_file_with_the_flags_on_top():
    shipped = json.loads((CONFIG_DIR / "sft.json").read_text())
    plain = deepspeed_config(_cfg(), "sft", total_steps=10)
    assert plain["train_micro_batch_size_per_gpu"] == shipped["train_micro_batch_size_per_gpu"]
    assert plain["zero_optimization"]["stage"] == shipped["zero_optimization"]["stage"] == 2
    assert plain["bf16"] == {"enabled": True} and "scheduler" not in plain
    assert plain["optimizer"]["params"]["torch_adam"] is True
    ds = deepspeed_config(_cfg(micro_batch_size=3, grad_accum=4, zero_stage=1, dtype="fp32", lr=0.5), "sft",
                          total_steps=10)
    assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"]) == (3, 4)
    assert ds["zero_optimization"]["stage"] == 1 and ds["bf16"] == {"enabled": False}
    assert ds["optimizer"]["params"]["lr"] == 0.5 and "train_batch_size" not in ds
    assert deepspeed_config(_cfg(lr=0.5), "ppo", total_steps=1, lr=0.25)["optimizer"]["params"]["lr"] == 0.25  # critic
    assert deepspeed_config(_cfg(), "ppo", total_steps=1)["zero_optimization"]["stage"] == 3


def test_warmup_makes_a_warmup_decay_schedule_over_the_run():
    ds = deepspeed_config(_cfg(lr=0.1, warmup_steps=5), "sft", total_steps=20)
    assert ds["scheduler"]["type"] == "WarmupDecayLR"
    params = ds["scheduler"]["params"]
    assert (params["warmup_max_lr"], params["warmup_num_steps"], params["total_num_steps"]) == (0.1, 5, 20)
    # a run shorter than its warm-up still gets a valid schedule (total > warm-up)
    assert deepspeed_config(_cfg(warmup_steps=5), "sft", total_steps=2)["scheduler"]["params"]["total_num_steps"] == 6


def test_bad_deepspeed_configs_are_user_errors_naming_the_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(PrefdataError, match="unreadable DeepSpeed config") as info:
        deepspeed_config(_cfg(deepspeed=str(broken)), "sft", total_steps=1)
    assert str(broken) in str(info.value)
    fp16 = tmp_path / "fp16.json"
    fp16.write_text(json.dumps({"fp16": {"enabled": True}}))
    with pytest.raises(PrefdataError, match="fp16 is not supported"):
        deepspeed_config(_cfg(deepspeed=str(fp16)), "sft", total_steps=1)


def test_frozen_engines_are_sharded_only_under_zero3():
    assert frozen_config(_cfg(micro_batch_size=4), 3)["zero_optimization"] == {"stage": 3}
    assert frozen_config(_cfg(micro_batch_size=4), 2)["zero_optimization"] == {"stage": 0}
    assert frozen_config(_cfg(dtype="fp32"), 0)["train_micro_batch_size_per_gpu"] == 1
    assert frozen_config(_cfg(dtype="fp32"), 0)["bf16"] == {"enabled": False}


# ---------------------------------------------------------------------------------------------- metrics, summary


def test_metrics_log_writes_rank_zeros_lines_to_the_file_and_to_stdout_unless_quiet(tmp_path, capsys):
    loud, quiet, other = tmp_path / "loud", tmp_path / "quiet", tmp_path / "rank1"
    metrics.MetricsLog(loud, rank=0, quiet=False)({"step": 1, "loss": 0.12345678})
    metrics.MetricsLog(quiet, rank=0, quiet=True)({"step": 1})
    metrics.MetricsLog(other, rank=1, quiet=False)({"step": 1})
    captured = capsys.readouterr()
    assert captured.out == '{"step": 1, "loss": 0.123457}\n' and captured.err == ""  # floats rounded to 6 places
    assert (loud / "metrics.jsonl").read_text() == '{"step": 1, "loss": 0.123457}\n'
    assert (quiet / "metrics.jsonl").read_text() == '{"step": 1}\n'
    assert not other.exists()  # only rank 0 writes


def test_summary_lines():
    sft = {"phase": "sft", "steps": 4, "first_loss": 5.0, "last_loss": 2.5, "eval_before": {"perplexity": 100.0},
           "eval_after": {"perplexity": 12.5}, "out": "o"}
    assert metrics.summary_line(sft) == "sft: 4 steps, loss 5 -> 2.5, perplexity 100 -> 12.5; checkpoint in o"
    ppo = {"phase": "ppo", "steps": 8, "rewards": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], "kls": [0.5], "out": "p"}
    # first and last quarter of the rewards: mean(0, 1) = 0.5, mean(6, 7) = 6.5
    assert metrics.summary_line(ppo) == "ppo: 8 steps, reward 0.5 -> 6.5, last KL 0.5; checkpoint in p"


# ------------------------------------------------------------------------------------------------------- loaders


def test_loader_gives_each_rank_its_own_equal_share():
    data = [{"x": torch.tensor([i])} for i in range(5)]
    collate = lambda rows: {"x": torch.cat([r["x"] for r in rows])}  # noqa: E731
    shares = [[int(v) for b in engine.loader(data, 2, collate, shuffle=False, seed=0, rank=r, world=2) for v in b["x"]]
              for r in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == 3  # 5 rows over 2 ranks: padded to 3 each
    assert set(shares[0]) | set(shares[1]) == set(range(5))


def test_batch_shape_reads_the_flags_through_the_deepspeed_config():
    assert engine.batch_shape(_cfg(micro_batch_size=5, grad_accum=2), "sft") == (5, 2)
    shipped = json.loads((CONFIG_DIR / "reward.json").read_text())
    assert engine.batch_shape(_cfg(), "reward") == (shipped["train_micro_batch_size_per_gpu"],
                                                    shipped["gradient_accumulation_steps"])


def test_to_device_moves_every_tensor():
    moved = engine.to_device({"a": torch.ones(2), "b": torch.zeros(1)}, torch.device("cpu"))
    assert set(moved) == {"a", "b"} and all(v.device.type == "cpu" for v in moved.values())


# --------------------------------------------------------------------------------------------------- checkpoints


def test_unwrap_reaches_the_transformers_model():
    from transformers import GPT2Config, GPT2ForSequenceClassification

    from trainers.components.models import ValueModel

    inner = GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_head=1, n_embd=8, vocab_size=16, num_labels=1))
    wrapped = ValueModel(inner)
    engine_like = type("Engine", (), {"module": wrapped})()
    assert checkpoints.unwrap(engine_like) is inner and checkpoints.unwrap(wrapped) is inner
    assert checkpoints.unwrap(inner) is inner


def test_no_resume_point_means_start_at_zero(tmp_path):
    assert checkpoints.load_resume_point(object(), tmp_path / "checkpoints") == (0, 0)


# ---------------------------------------------------------------------------------------------------- processes


def test_free_port_and_rank_zero(monkeypatch):
    port = distributed.free_port()
    assert 0 < port < 65536
    monkeypatch.setenv("RANK", "1")
    assert not distributed.is_rank_zero()
    monkeypatch.setenv("RANK", "0")
    assert distributed.is_rank_zero()


def test_set_seed_makes_draws_repeat():
    distributed.set_seed(7)
    first = torch.rand(3)
    distributed.set_seed(7)
    assert torch.equal(first, torch.rand(3))


@pytest.mark.parametrize("quiet", [False, True])
def test_deepspeed_import_keeps_its_log_off_stdout(quiet):
    """DeepSpeed warns 'Setting accelerator to CPU' on stdout as it is imported; stdout is for results."""
    code = ("import logging\nfrom trainers.runtime.distributed import import_deepspeed\n"
            f"import_deepspeed(quiet={quiet})\nlogging.getLogger('DeepSpeed').warning('later warning')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("DS_ACCELERATOR", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == ""
    assert ("later warning" in done.stderr) is not quiet
    if not quiet and not torch.cuda.is_available():
        assert "Setting accelerator to CPU" in done.stderr
    if quiet:
        assert "Setting accelerator" not in done.stderr


def test_world_of_one_sums_to_its_own_values(monkeypatch):
    sys.path.insert(0, str(Path(__file__).parent))
    import trainer_helpers as helpers

    helpers.single_process_env(monkeypatch)
    assert distributed.init_distributed(quiet=True) == (0, 1)
    assert distributed.all_reduce_sum([1.5, 2.0]) == [1.5, 2.0]
    assert distributed.device().type == "cpu" or torch.cuda.is_available()
