"""The experiments layer: typed presets, teachers, run folders, and train / compare / tune / demo as a Python API.

One module per job, each importing the layers below it (core, models, attacks, distributed, evaluation, trainers)
and nothing above:

* :mod:`~art_rslad.experiments.variants`: method specs ``NAME[+igdm][+ema|+swa]`` over the registry of methods.
* :mod:`~art_rslad.experiments.config`: :class:`Config` and the named presets, with ``key=value`` overrides and
  per-method settings.
* :mod:`~art_rslad.experiments.tomlfile`: reading and writing config files as TOML.
* :mod:`~art_rslad.experiments.teachers`: train, import, ship (model cards) and load robust teachers.
* :mod:`~art_rslad.experiments.folders`: what a run folder holds; prepare, resume, overwrite, read back.
* :mod:`~art_rslad.experiments.train`: :class:`RunSettings` and :func:`train_run` (``art-rslad train``).
* :mod:`~art_rslad.experiments.compare`: :func:`compare` over methods and seeds (``art-rslad compare``).
* :mod:`~art_rslad.experiments.tune`: per-method learning rates on the validation split (``art-rslad tune``).
* :mod:`~art_rslad.experiments.demo`: RSLAD against SAT on Fashion-MNIST (``art-rslad demo``).
"""
