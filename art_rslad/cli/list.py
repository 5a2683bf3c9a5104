"""``art-rslad list``: the registered training methods, models (with parameter counts), datasets, presets and
shipped teachers."""

from __future__ import annotations

import argparse

from art_rslad.cli.options import subcommand
from art_rslad.data import dataset_info, dataset_names
from art_rslad.experiments.config import get_preset, preset_names
from art_rslad.experiments.teachers import list_zoo, zoo_card
from art_rslad.experiments.variants import SPEC_FORM, takes_igdm, takes_weight_averaging
from art_rslad.models import get_entry, list_models, model_parameter_count
from art_rslad.trainers.registry import METHODS


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subcommand(subparsers, "list", "List methods, models, datasets, presets and shipped teachers.", __doc__)
    parser.add_argument("--nb-classes", type=int, default=10,
                        help="Class count used for the parameter counts (default: 10).")
    return parser


def run(args: argparse.Namespace) -> int:
    print("Methods (name, family, networks beside the student (* trained with it), paper):")
    networks = {name: "+".join(net.name + "*" * net.trained for net in method.networks if net.required) or "-"
                for name, method in METHODS.items()}
    width = max(map(len, networks.values()))
    for name, method in METHODS.items():
        print(f"  {name:<28} {method.family:<22} {networks[name]:<{width}} {method.paper}")
    print(f"Method variants, written {SPEC_FORM}:")
    print("  +igdm: " + ", ".join(name for name, method in METHODS.items() if takes_igdm(method)))
    print("  +ema, +swa: " + ", ".join(name for name, method in METHODS.items() if takes_weight_averaging(method)))
    print(f"Models (parameters at nb_classes={args.nb_classes}):")
    for name in list_models():
        entry = get_entry(name)
        count = model_parameter_count(name, args.nb_classes)
        print(f"  {name:<12} {count:>12,}  input {'x'.join(map(str, entry.input_shape)):<8} {entry.description}")
    print("Datasets:")
    for name in dataset_names():
        info = dataset_info(name)
        print(f"  {name:<14} input {'x'.join(map(str, info.input_shape)):<8} classes {info.nb_classes:<4} "
              f"eps {info.eps:.4g}  augmentation {info.augmentation}")
    print("Presets:")
    for name in preset_names():
        preset = get_preset(name)
        print(f"  {name:<22} student {preset.student:<12} teacher {preset.teacher.source or preset.teacher.model:<40}"
              f" {preset.nb_epochs} epochs")
    print("Shipped teachers (zoo:<name>):")
    for name in list_zoo():
        card, _ = zoo_card(name)
        measured = ", ".join(f"{attack} {100 * entry['accuracy']:.1f}% (n={entry['nb_images']})"
                             for attack, entry in card.metrics.items())
        print(f"  {name:<26} {card.architecture} on {card.dataset}, eps {card.eps:g}: {measured}")
    return 0
