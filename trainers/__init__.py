"""The three InstructGPT phases on DeepSpeed, fed by a `prefdata split` directory (torchtune-style layout).

- `recipes`: one file per phase (``sft``, ``reward``, ``ppo``, plus ``tokenizer``), read top to bottom; each runs as
  ``python -m trainers.recipes.<phase>``, under ``deepspeed``/``torchrun``, or as ``prefdata train <phase>``.
- `components`: what the recipes are made of and what is unit-tested on its own: the token cache and collators
  (`tokens`, `collate`), model loading (`models`) and the RL math (`rl`).
- `runtime`: the plumbing: settings and their click options (`options`), process start (`distributed`), the DeepSpeed
  config (`ds_config`), loaders and engine (`engine`), checkpoints and the metrics log.
- `configs`: the shipped DeepSpeed JSON configs.

torch, transformers and deepspeed are the ``train`` extra and are imported only inside functions.
"""
