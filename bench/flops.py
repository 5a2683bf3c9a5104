"""FLOPs of one RSLAD training image on CIFAR shapes, counted by ``torch.utils.flop_counter`` (the basis of the
GPU projection in docs/performance.md).

Run from the repository root::

    PYTHONPATH=. python3 -m bench.flops --batch-size 2

Counts, per image, the plain loop's phases (``bench/plain_loops.py``: the same tensor work as our trainer): the
teacher's forward on x, the 10 PGD steps (student forward and input-only backward), and the outer step (two student
forwards and the backward with parameter gradients). FLOPs are 2 per multiply-add, as the counter reports them.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from art_rslad.models import create_model
from bench.plain_loops import PlainSetup, kl, soft_label_attack


def count(function: object) -> int:
    with FlopCounterMode(display=False) as counter:
        function()  # type: ignore[operator]
    return counter.get_total_flops()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--student", default="resnet18")
    parser.add_argument("--teacher", default="wrn-34-10")
    parser.add_argument("--max-iter", type=int, default=10)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    shape = (3, 32, 32)
    student, teacher = create_model(args.student, 10, input_shape=shape), create_model(args.teacher, 10,
                                                                                        input_shape=shape).eval()
    setup = PlainSetup(student, torch.optim.SGD(student.parameters(), lr=0.1), teacher=teacher, eps=8 / 255,
                       eps_step=2 / 255, steps=1)
    x = torch.rand(args.batch_size, *shape)
    probs = torch.softmax(setup.teacher_logits(x), dim=1)
    state: dict[str, torch.Tensor] = {}

    def attack_step() -> None:
        # One PGD step, input gradient only (the counter cannot follow torch.autograd.grad on a leaf: backward()
        # with the parameters frozen does the same work).
        student.eval()
        x_adv = x.clone().requires_grad_(True)
        for parameter in student.parameters():
            parameter.requires_grad_(False)
        kl(probs, student(x_adv), "sum").backward()
        for parameter in student.parameters():
            parameter.requires_grad_(True)

    def outer() -> None:
        student.train()
        loss = kl(probs, student(state["x_adv"]), "mean") + kl(probs, student(x), "mean")
        loss.backward()

    state["x_adv"] = soft_label_attack(setup, x, probs)
    phases = {"teacher forward on x": count(lambda: setup.teacher_logits(x)),
              f"PGD-{args.max_iter}": args.max_iter * count(attack_step),
              "outer step (2 forwards + backward)": count(outer)}
    total = sum(phases.values())
    print(f"{args.student} student, {args.teacher} teacher, 32x32x3 inputs: GFLOPs per training image")
    for name, flops in phases.items():
        print(f"  {name}: {flops / args.batch_size / 1e9:.2f} ({flops / total:.0%})")
    print(f"  total: {total / args.batch_size / 1e9:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
