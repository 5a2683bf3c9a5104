"""How each preset's learning rates were chosen, in words: the ``method_lr_note`` every table prints under itself
(see docs/decisions.md, "Learning rate per method")."""

from __future__ import annotations

#: The note of the paper's presets.
PAPER_NOTE = ("The paper's lr 0.1 for every method with each method's official loss scale (not tuned here; "
              "under this 300-epoch recipe the official code uses one lr for all).")

#: Method variants each tuned preset's second tuning round chose an lr for, in the order its table lists them.
TUNED_VARIANTS = ("igdm", "ema")
#: The methods and variants of that second round, as its command named them.
SECOND_ROUND = ("adaiad", "peeraid", "rslad+igdm", "adaiad+igdm", "sat+ema", "rslad+ema")


def tuned_note(preset: str, nb_epochs: int, train: str, val_size: int, new: tuple[str, ...]) -> str:
    """The note of a tuned preset: the rule, and the command of each tuning round (``new``: the second's methods)."""
    return (
        "Chosen by the validation rule: for each method the lr in {0.01, 0.03, 0.1, 0.3, 1} "
        f"whose {nb_epochs}-epoch run on {train} training images had the highest PGD-10 accuracy on {val_size:,} "
        f"validation images; command: art-rslad tune --preset {preset} --methods sat trades ard iad adaad rslad "
        f"--epochs {nb_epochs} --train-size 10000 --val-size {val_size} --out studies/tune-{preset}. RSLAD and "
        "AdaAD keep the official loss scale 0.1, so their lr 1 is a batch-mean KL at lr 0.1. The methods since "
        f"RSLAD by the same rule and settings: art-rslad tune --preset {preset} --methods {' '.join(new)} --epochs "
        f"{nb_epochs} --train-size 10000 --val-size {val_size} --out studies/tune-{preset}-new. "
        + _note_2022(preset, f"--epochs {nb_epochs} --train-size 10000 --val-size {val_size}")
    )


def _note_2022(preset: str, settings: str) -> str:
    """The command that chose the lr of the methods since 2022 on ``preset``."""
    return (f"The methods since 2022 by the same rule and settings: art-rslad tune --preset {preset} --methods mtard "
            f"absld dgad ciard saad {settings} --out studies/tune-{preset}-2022.")


__all__ = ["PAPER_NOTE", "SECOND_ROUND", "TUNED_VARIANTS", "tuned_note"]
