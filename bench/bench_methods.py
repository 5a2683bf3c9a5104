"""Every method of the shared loop through our ART trainer against an independent plain PyTorch loop of its recipe.

Run from the repository root, e.g.::

    OMP_NUM_THREADS=1 PYTHONPATH=. python3 -m bench.bench_methods --nb-samples 2048 --repeats 5 --json out.json

For every case below two variants run one epoch each: ``ours:<case>``, our trainer's ``fit(x, y, nb_epochs=1)``
with ART classifiers in, and ``plain:<case>``, the plain loop of ``bench/plain_loops.py`` (same student weights,
teacher, data, batch order, batch size, PGD steps, optimizer). ART's own ``AdversarialTrainerMadryPGD`` and
``AdversarialTrainerTRADESPyTorch`` run beside SAT and TRADES (ART's classes as ART ships them: MadryPGD's attack
batch is ART's default, TRADESPyTorch attacks with the cross-entropy from a uniform start). All variants run
interleaved in one process on one thread, in alternating order, medians of ``--repeats`` rounds after one warm-up
round. Data: the first ``--nb-samples`` Fashion-MNIST training images, eps 0.1, step 0.025, a ``cnn-small``
student, the shipped teacher ``zoo:fashion-mnist-cnn-large`` (PeerAiD: a ``cnn-small`` peer instead; MTARD and CIARD
also the shipped clean teacher ``zoo:fashion-mnist-cnn-large-clean``; CIARD trains a copy of the teacher).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from art.attacks.evasion import ProjectedGradientDescentPyTorch
from art.defences.trainer import AdversarialTrainerMadryPGD, AdversarialTrainerTRADESPyTorch
from art.estimators.classification import PyTorchClassifier

from art_rslad.data import load_dataset
from art_rslad.experiments.teachers import load_teacher
from art_rslad.models import create_model
from art_rslad.trainers.registry import Method, get_method
from bench.common import environment, format_ratio_table, ratio_rows, run_interleaved, write_json
from bench.plain_loops import PlainEMA, batch_order, plain_epoch
from bench.plain_loops_recent import RecentSetup
from bench.plain_methods import PLAIN_METHODS

SHAPE = (1, 28, 28)
TEACHER = "zoo:fashion-mnist-cnn-large"
CLEAN_TEACHER = "zoo:fashion-mnist-cnn-large-clean"


@dataclass(frozen=True)
class Case:
    """One benchmarked method: a registry name, our trainer's extra options, the plain loop's plug-ins."""

    method: str
    trainer_options: dict[str, Any] = field(default_factory=dict)
    igdm_alpha: float = 0.0
    ema: bool = False


#: Every method of the shared loop, and RSLAD with each plug-in.
CASES: dict[str, Case] = {
    **{name: Case(name) for name in PLAIN_METHODS},
    "rslad+igdm": Case("rslad", {"igdm_alpha": 1.0}, igdm_alpha=1.0),
    "rslad+ema": Case("rslad", {"weight_averaging": "ema"}, ema=True),
}
#: ART's own trainers and the plain loop each is shown beside.
ART_TRAINERS = {"art-madry-pgd": "sat", "art-trades-pytorch": "trades"}


@dataclass(frozen=True)
class Bench:
    """What every variant shares."""

    x: np.ndarray
    y: np.ndarray
    batch_size: int
    eps: float
    eps_step: float
    max_iter: int
    device: torch.device
    student: torch.nn.Module  # the initial weights every variant copies
    peer: torch.nn.Module
    teacher: PyTorchClassifier
    clean_teacher: PyTorchClassifier


def sgd(model: torch.nn.Module) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=2e-4)


def network_sgd(method: Method, name: str, model: torch.nn.Module) -> torch.optim.SGD:
    """The SGD of the trained network ``name`` of ``method``: its declared settings, else the student's."""
    own = next(net.optimizer for net in method.networks if net.name == name)
    return sgd(model) if own is None else torch.optim.SGD(model.parameters(), **dataclasses.asdict(own))


def classifier(model: torch.nn.Module, device: torch.device, optimizer: torch.optim.Optimizer | None = None
               ) -> PyTorchClassifier:
    """An ART classifier around ``model`` with SGD (default: lr 0.05, momentum 0.9, weight decay 2e-4), inputs in
    [0, 1]."""
    return PyTorchClassifier(model, torch.nn.CrossEntropyLoss(), SHAPE, 10, optimizer=optimizer or sgd(model),
                             clip_values=(0.0, 1.0), device_type="cpu" if device.type == "cpu" else "gpu")


def uses_peer(method: Method) -> bool:
    """Whether ``method`` trains a ``peer`` network beside the student (the plain loops' second network)."""
    return any(net.name == "peer" for net in method.trained_networks)


def starts(peer: torch.nn.Module, teacher: torch.nn.Module, clean_teacher: torch.nn.Module
           ) -> dict[str, torch.nn.Module]:
    """The model each declared network start takes (:data:`art_rslad.trainers.networks.Start`)."""
    return {"student": peer, "teacher": teacher, "clean_teacher": clean_teacher}


def trainer_networks(method: Method, models: dict[str, torch.nn.Module],
                     wrap: Callable[[torch.nn.Module, torch.optim.Optimizer | None], PyTorchClassifier]
                     ) -> dict[str, PyTorchClassifier]:
    """Our trainer's networks beside the student, from its declaration and :func:`starts`' models: a frozen one
    as it is, a trained one a copy with its SGD (:func:`network_sgd`)."""
    networks = {}
    for net in method.networks:
        if net.required:
            model = copy.deepcopy(models[net.start]) if net.trained else models[net.start]
            networks[net.name] = wrap(model, network_sgd(method, net.name, model) if net.trained else None)
    return networks


def ours(bench: Bench, case: Case) -> Callable[[], None]:
    """One epoch of our trainer's ``fit``; the trainer is built once, its student keeps training across calls."""
    method = get_method(case.method)
    models = starts(bench.peer, bench.teacher.model, bench.clean_teacher.model)
    partner = trainer_networks(method, models, lambda model, optimizer: classifier(model, bench.device, optimizer))
    trainer = method.trainer(classifier(copy.deepcopy(bench.student), bench.device), **partner, eps=bench.eps,
                             eps_step=bench.eps_step, max_iter=bench.max_iter, seed=0, verbose=False,
                             **case.trainer_options)
    return lambda: trainer.fit(bench.x, bench.y, batch_size=bench.batch_size, nb_epochs=1)


def plain_setup(case: Case, student: torch.nn.Module, models: dict[str, torch.nn.Module], **attack: Any
                ) -> RecentSetup:
    """The plain loop's setup for ``case`` from :func:`starts`' models: the teacher, the clean teacher and the peer
    where the method uses them, each trained one a copy with its own SGD; ``attack``: ``eps``, ``eps_step``,
    ``steps``, ``seed``."""
    method = get_method(case.method)
    used = {net.name: net for net in method.networks if net.required}
    chosen = {name: copy.deepcopy(models[net.start]) if net.trained else models[net.start]
              for name, net in used.items()}
    trained = {name: network_sgd(method, name, chosen[name]) for name, net in used.items() if net.trained}
    return RecentSetup(student, sgd(student), teacher=chosen.get("teacher"), peer=chosen.get("peer"),
                       peer_optimizer=trained.get("peer"), clean_teacher=chosen.get("clean_teacher"),
                       teacher_optimizer=trained.get("teacher"), **attack)


def plain(bench: Bench, case: Case) -> Callable[[], None]:
    """One epoch of the plain loop, with the trainer's batch order."""
    student = copy.deepcopy(bench.student)
    models = starts(bench.peer, bench.teacher.model, bench.clean_teacher.model)
    setup = plain_setup(case, student, models, eps=bench.eps, eps_step=bench.eps_step, steps=bench.max_iter)
    x, y = torch.from_numpy(bench.x), torch.from_numpy(bench.y)
    nb_batches = -(-len(x) // bench.batch_size)

    def run() -> None:
        ema = PlainEMA(student, nb_batches) if case.ema else None
        plain_epoch(setup, PLAIN_METHODS[case.method], x, y, bench.batch_size, batch_order(len(x), 0, 0),
                    igdm_alpha=case.igdm_alpha, ema=ema)
        if ema is not None:
            student.load_state_dict(ema.state)  # as our trainer returns the averaged student

    return run


def art_trainer(bench: Bench, name: str) -> Callable[[], None]:
    """One epoch of ART's own trainer, as ART ships it."""
    art_classifier = classifier(copy.deepcopy(bench.student), bench.device)
    if name == "art-madry-pgd":
        madry = AdversarialTrainerMadryPGD(art_classifier, nb_epochs=1, batch_size=bench.batch_size, eps=bench.eps,
                                           eps_step=bench.eps_step, max_iter=bench.max_iter, num_random_init=1)
        return lambda: madry.fit(bench.x, bench.y)
    attack = ProjectedGradientDescentPyTorch(art_classifier, eps=bench.eps, eps_step=bench.eps_step,
                                             max_iter=bench.max_iter, num_random_init=1,
                                             batch_size=bench.batch_size, verbose=False)
    trades = AdversarialTrainerTRADESPyTorch(art_classifier, attack, beta=6.0)
    return lambda: trades.fit(bench.x, bench.y, batch_size=bench.batch_size, nb_epochs=1)


def variants(bench: Bench, cases: list[str], art: list[str]) -> tuple[dict[str, Callable[[], None]],
                                                                   dict[str, tuple[str, str]]]:
    """The timed variants and the table's pairs (label -> (variant, reference))."""
    runs: dict[str, Callable[[], None]] = {}
    pairs: dict[str, tuple[str, str]] = {}
    for name in cases:
        runs[f"ours:{name}"], runs[f"plain:{name}"] = ours(bench, CASES[name]), plain(bench, CASES[name])
        pairs[name] = (f"ours:{name}", f"plain:{name}")
    for name in art:
        reference = ART_TRAINERS[name]
        if f"plain:{reference}" not in runs:
            runs[f"plain:{reference}"] = plain(bench, CASES[reference])
        runs[name] = art_trainer(bench, name)
        pairs[name] = (name, f"plain:{reference}")
    return runs, pairs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nb-samples", type=int, default=2048, help="Training images (default 2048).")
    parser.add_argument("--batch-size", type=int, default=128, help="Batch size (default 128).")
    parser.add_argument("--max-iter", type=int, default=10, help="PGD steps (default 10).")
    parser.add_argument("--repeats", type=int, default=5, help="Timed rounds (default 5).")
    parser.add_argument("--cases", default=",".join(CASES), help=f"Comma-separated subset of {', '.join(CASES)}.")
    parser.add_argument("--art", default=",".join(ART_TRAINERS), help="ART trainers to add ('' for none).")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1).")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="Also write the raw measurements to this JSON file.")
    return parser.parse_args(argv)


def make_bench(nb_samples: int, batch_size: int, max_iter: int, device: torch.device) -> Bench:
    """The first ``nb_samples`` Fashion-MNIST training images, seeded students, the shipped teacher."""
    x, y = load_dataset("fashion-mnist", "train")
    torch.manual_seed(0)
    return Bench(x[:nb_samples].copy(), y[:nb_samples].copy(), batch_size, 0.1, 0.025, max_iter, device,
                 create_model("cnn-small", 10, input_shape=SHAPE).to(device),
                 create_model("cnn-small", 10, input_shape=SHAPE).to(device),
                 load_teacher(TEACHER, "fashion-mnist", device=device.type),
                 load_teacher(CLEAN_TEACHER, "fashion-mnist", device=device.type))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    bench = make_bench(args.nb_samples, args.batch_size, args.max_iter, device)
    cases = [name for name in args.cases.split(",") if name]
    runs, pairs = variants(bench, cases, [name for name in args.art.split(",") if name])
    results = run_interleaved(runs, args.repeats, device)
    rows = ratio_rows(results, pairs)
    memory = "MiB (RSS growth)" if device.type == "cpu" else "MiB (max_memory_allocated)"
    print(f"One epoch of {args.nb_samples} Fashion-MNIST images, cnn-small student, teacher {TEACHER}, batch "
          f"{args.batch_size}, PGD-{args.max_iter}, device {device}, {torch.get_num_threads()} thread(s), "
          f"{args.repeats} repeats, torch {torch.__version__}")
    print(format_ratio_table(rows, memory))
    if args.json:
        write_json(args.json, {"benchmark": "methods", **vars(args), **environment(device)}, results,
                   args.nb_samples, rows=rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
