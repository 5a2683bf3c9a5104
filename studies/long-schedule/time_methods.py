"""One timed epoch of each method of the long-schedule study, on training and validation data only.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python studies/long-schedule/time_methods.py digits-small

Prints, per method, the CPU seconds of one epoch of training and of one validation (the process's CPU time, which
other jobs on the machine disturb far less than the wall clock), and the projected core-hours of the part's runs.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from art_rslad.data import dataset_info, load_dataset, train_val_split
from art_rslad.experiments.config import get_preset
from art_rslad.experiments.teachers import load_teacher
from art_rslad.experiments.variants import IGDM_DEFAULT_ALPHA, parse_method
from art_rslad.models import create_model, make_classifier

PARTS = {
    # preset, student options, training images, validation images, epochs, seeds, methods
    "digits-small": ("digits", {"width": 4}, None, 144, 300, 5,
                     "natural sat trades ard iad adaad rslad rslad+igdm adaiad adaiad+igdm peeraid sat+ema "
                     "rslad+ema"),
    "fashion-mnist": ("fashion-mnist", {"width": 4}, 10_000, 1000, 30, 3,
                      "sat trades ard rslad rslad+igdm adaiad+igdm peeraid sat+ema rslad+ema"),
}


def _trainer(spec_text: str, config, options, teacher):
    spec = parse_method(spec_text)
    info = dataset_info(config.dataset)
    torch.manual_seed(0)
    models = [create_model(config.student, info.nb_classes, input_shape=info.input_shape, **options)
              for _ in range(1 + len(spec.method.trained_networks))]
    student, *peers = [make_classifier(model, config.dataset, lr=0.01, device="cpu") for model in models]
    trained = {net.name: peer for net, peer in zip(spec.method.trained_networks, peers, strict=True)}
    networks = {"teacher": teacher} if spec.method.needs_teacher else trained
    extra = {**({"igdm_alpha": IGDM_DEFAULT_ALPHA} if spec.igdm else {}),
             **({"weight_averaging": spec.weight_averaging} if spec.weight_averaging else {})}
    return spec.method.trainer(student, **networks, eps=config.eps, eps_step=config.eps_step,
                               max_iter=config.max_iter, seed=0, verbose=False, **extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=sorted(PARTS))
    args = parser.parse_args()
    preset, options, train_size, val_size, epochs, seeds, methods = PARTS[args.part]
    config = get_preset(preset)
    x, y = load_dataset(config.dataset, "train")
    x_train, y_train, x_val, y_val = train_val_split(x, y, config.val_fraction, 0)
    x_train, y_train, x_val, y_val = x_train[:train_size], y_train[:train_size], x_val[:val_size], y_val[:val_size]
    teacher = load_teacher(config.teacher.source, config.dataset, device="cpu")
    rows, total = {}, 0.0
    for name in methods.split():
        trainer = _trainer(name, config, options, teacher)
        started = time.process_time()
        trainer.fit(x_train, y_train, batch_size=config.batch_size, nb_epochs=1)
        train = time.process_time() - started
        started = time.process_time()
        trainer.validate(x_val, y_val, batch_size=256)
        validation = time.process_time() - started
        rows[name] = {"train_cpu_s": round(train, 3), "validation_cpu_s": round(validation, 3)}
        total += (train + validation) * epochs * seeds
        print(f"{name:<14} train {train:7.3f} s  validation {validation:6.3f} s per epoch", flush=True)
    print(json.dumps({"part": args.part, "epochs": epochs, "seeds": seeds, "methods": rows,
                      "training_core_hours": round(total / 3600, 2)}, indent=1))


if __name__ == "__main__":
    main()
