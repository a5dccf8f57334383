"""The three InstructGPT phases on DeepSpeed, fed by a `prefdata split` directory.

`data` tokenises each phase once into a memory-mapped Arrow cache; `sft`, `reward` and `ppo` are recipes, one file per
phase, read top to bottom. Each runs as ``python -m trainers.<phase>``, under ``deepspeed``/``torchrun``, or as
``prefdata train <phase>``. torch, transformers and deepspeed are the ``train`` extra and are imported only here.
"""
