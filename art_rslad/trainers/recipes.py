"""Official recipes: the settings a method's paper trains it with on CIFAR, declared in its registry record.

A :class:`Recipe` holds the config keys in which a method's official recipe differs from the paper presets' own
(RSLAD's: 300 epochs, lr x0.1 after 215/260/285, weight decay 2e-4, no weight averaging), the phrase that says so,
and its differences on other datasets (CIFAR-100). The paper presets (:mod:`art_rslad.experiments.config`) build
their ``method_overrides`` and ``method_overrides_note`` from the records' recipes alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Recipe:
    """A method's official recipe where it differs from the paper presets' own; ``None`` keeps the preset's value.

    The setting fields are the config keys a method may override (``method_overrides``), in the order its entry
    lists them.

    :param note: The phrase that describes the recipe (``"200 epochs, lr x0.1 after 100/150"``), without the
        method's name; required when the recipe sets anything.
    :param datasets: Dataset name -> its differences there (a recipe of settings and a phrase, e.g. CIFAR-100's
        loss scale), applied over this recipe's settings.
    """

    nb_epochs: int | None = None
    lr_schedule_epochs: int | None = None
    lr_milestones: tuple[int, ...] | None = None
    lr_gamma: float | None = None
    lr_schedule: str | None = None
    lr_cosine_start: int | None = None
    batch_size: int | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    eps_step: float | None = None
    max_iter: int | None = None
    weight_averaging: str | None = None
    weight_averaging_start: int | None = None
    igdm_alpha: float | None = None
    loss_scale: float | None = None
    note: str = ""
    datasets: Mapping[str, Recipe] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.own_settings() and not self.note:
            raise ValueError(f"Recipe {self.own_settings()} has no note: say in a phrase what it is and where it "
                             "comes from (e.g. note='200 epochs, lr x0.1 after 100/150').")
        nested = [name for name, recipe in self.datasets.items() if recipe.datasets]
        if nested:
            raise ValueError(f"The recipe for dataset(s) {', '.join(nested)} has `datasets` of its own; a dataset's "
                             "recipe holds only its settings and note.")

    def own_settings(self) -> dict[str, Any]:
        """The config keys it sets itself (lists for tuples, as a config table holds them)."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in ((name, getattr(self, name)) for name in RECIPE_KEYS) if value is not None}

    def settings(self, dataset: str) -> dict[str, Any]:
        """The config keys it sets on ``dataset``: its own, then its entry in :attr:`datasets`."""
        extra = self.datasets.get(dataset)
        return {**self.own_settings(), **(extra.own_settings() if extra else {})}

    def dataset_note(self, dataset: str) -> str:
        """The phrase of its differences on ``dataset`` (``""`` for none)."""
        extra = self.datasets.get(dataset)
        return extra.note if extra else ""

    def plus(self, note: str, **settings: Any) -> Recipe:
        """This recipe with more ``settings`` (config keys), its note extended by ``note``."""
        return dataclasses.replace(self, **settings, note=f"{self.note}, {note}" if self.note else note)

    def on(self, dataset: str, differences: Recipe) -> Recipe:
        """This recipe with ``differences`` (settings and their phrase) on ``dataset``."""
        return dataclasses.replace(self, datasets={**self.datasets, dataset: differences})


#: The config keys a recipe (and a method's ``method_overrides`` entry) may set.
RECIPE_KEYS: tuple[str, ...] = tuple(item.name for item in dataclasses.fields(Recipe)
                                     if item.name not in ("note", "datasets"))

#: No recipe: the method trains with the preset's settings, and the preset's note does not name it.
NO_RECIPE = Recipe()
#: The paper presets' own schedule (RSLAD's), for the methods whose official recipe it is: sets nothing.
PRESET_SCHEDULE = Recipe(note="300 epochs, lr x0.1 after 215/260/285 (the preset's own)")
#: 200 epochs, lr x0.1 after 100 and 150 (IAD's, AdaAD's, DGAD's, SAAD's and IGDM's official code).
TWO_HUNDRED_EPOCHS = Recipe(nb_epochs=200, lr_schedule_epochs=200, lr_milestones=(100, 150),
                            note="200 epochs, lr x0.1 after 100/150")

__all__ = ["NO_RECIPE", "PRESET_SCHEDULE", "RECIPE_KEYS", "TWO_HUNDRED_EPOCHS", "Recipe"]
