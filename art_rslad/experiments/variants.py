"""Method specs: a registered method, optionally with IGDM or weight averaging switched on.

A spec is ``NAME[+igdm][+ema|+swa]``: ``rslad``, ``rslad+igdm``, ``adaiad+igdm``, ``sat+ema``, ``rslad+igdm+swa``.
``NAME`` is a name of the one registry of methods (:data:`art_rslad.trainers.registry.METHODS`); the suffixes are
options of its trainer, not other methods: ``+igdm`` sets ``igdm_alpha`` (distillation methods only) and ``+ema`` /
``+swa`` set ``weight_averaging`` (methods of the shared loop only, not ART's own trainers). The spec is the
method's name in run folders (``runs/rslad+igdm/seed-0``), in ``method_lr`` and ``method_overrides`` keys and in
tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from art_rslad.trainers.averaging import AVERAGERS
from art_rslad.trainers.registry import METHODS, Method, get_method, method_names

SEPARATOR = "+"
IGDM = "igdm"
#: ``igdm_alpha`` of ``+igdm`` when the config's is 0 (IGDM's CIFAR-10 value).
IGDM_DEFAULT_ALPHA = 1.0
#: How a spec is written, for error messages.
SPEC_FORM = f"NAME[+{IGDM}][{'|'.join('+' + name for name in AVERAGERS)}]"


def takes_igdm(method: Method) -> bool:
    """Whether ``method``'s trainer takes ``igdm_alpha``: a method of the shared loop that always has a frozen teacher
    and no input-gradient matching of its own."""
    return method.shared_loop and method.needs_teacher and method.takes_terms


def takes_weight_averaging(method: Method) -> bool:
    """Whether ``method``'s trainer takes ``weight_averaging`` (the methods of the shared loop)."""
    return method.shared_loop


def takes_loss_scale(method: Method) -> bool:
    """Whether ``method``'s trainer has a loss ``scale`` (RSLAD and AdaAD)."""
    return method.takes_loss_scale


def _names(predicate: object) -> str:
    return ", ".join(name for name in method_names() if predicate(get_method(name)))  # type: ignore[operator]


def check_method_settings(method: Method, igdm_alpha: float, weight_averaging: str, loss_scale: float,
                          source: str) -> None:
    """Refuse settings that ``method`` cannot take (a ValueError names them and says where they came from).

    :param method: The registered method.
    :param igdm_alpha: IGDM's weight (0: off).
    :param weight_averaging: ``""`` (none), ``"ema"`` or ``"swa"``.
    :param loss_scale: The loss scale (0: the method's own).
    :param source: Where the settings came from, e.g. ``"method rslad+igdm"`` or ``"the config"``.
    """
    if igdm_alpha and not takes_igdm(method):
        raise ValueError(f"{source} sets igdm_alpha={igdm_alpha:g}, but {method.name} is not a teacher-student "
                         f"distillation method and has no IGDM term; IGDM applies to: {_names(takes_igdm)}.")
    if weight_averaging and not takes_weight_averaging(method):
        raise ValueError(f"{source} sets weight_averaging={weight_averaging!r}, but {method.name} runs ART's own "
                         f"training loop, which does not average weights; it applies to: "
                         f"{_names(takes_weight_averaging)}.")
    if loss_scale and not takes_loss_scale(method):
        raise ValueError(f"{source} sets loss_scale={loss_scale:g}, but {method.name} has no loss scale; methods "
                         f"with one: {_names(takes_loss_scale)}.")


@dataclass(frozen=True)
class MethodSpec:
    """A registered method and the trainer options its spec switches on.

    :param method: The registered method.
    :param igdm: ``+igdm``: IGDM's term on.
    :param weight_averaging: ``"ema"`` or ``"swa"`` from ``+ema`` / ``+swa``; ``""`` without.
    """

    method: Method
    igdm: bool = False
    weight_averaging: str = ""

    @property
    def name(self) -> str:
        """The spec as written: ``NAME[+igdm][+ema|+swa]``."""
        suffixes = ([IGDM] if self.igdm else []) + ([self.weight_averaging] if self.weight_averaging else [])
        return SEPARATOR.join([self.method.name, *suffixes])

    @property
    def is_variant(self) -> bool:
        return self.igdm or bool(self.weight_averaging)


def parse_method(spec: str) -> MethodSpec:
    """The :class:`MethodSpec` of ``spec`` (case-insensitive); a ValueError names an unknown method, an unknown or
    repeated suffix, suffixes out of order, or a suffix the method cannot take."""
    base, *suffixes = str(spec).strip().lower().split(SEPARATOR)
    method = get_method(base)
    igdm, averaging = False, ""
    for suffix in suffixes:
        if suffix == IGDM and not igdm and not averaging:
            igdm = True
        elif suffix in AVERAGERS and not averaging:
            averaging = suffix
        else:
            raise ValueError(f"Method {spec!r}: {SEPARATOR + suffix!r} is not allowed there; a method is written "
                             f"{SPEC_FORM}, e.g. rslad+{IGDM} or sat+ema (known methods: {', '.join(method_names())}).")
    parsed = MethodSpec(method, igdm, averaging)
    check_method_settings(method, IGDM_DEFAULT_ALPHA if igdm else 0.0, averaging, 0.0, f"Method {spec!r}")
    return parsed


def method_name(spec: str) -> str:
    """``spec`` validated and written the canonical way (lower case)."""
    return parse_method(spec).name


def check_method_specs(specs: Sequence[str], where: str) -> list[str]:
    """The one check of method names: ``specs`` validated and written the canonical way; a ValueError that starts
    with ``where`` (e.g. ``"`methods`"``) names an unknown method (listing the known ones), an empty list, or a
    suffix a method cannot take."""
    unknown = [spec for spec in specs if str(spec).strip().lower().split(SEPARATOR)[0] not in METHODS]
    if unknown or not specs:
        raise ValueError(f"{where}: unknown or no methods {unknown}; known methods: {', '.join(METHODS)} (with "
                         f"variants written {SPEC_FORM}).")
    try:
        return [method_name(spec) for spec in specs]
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from error


__all__ = ["IGDM", "IGDM_DEFAULT_ALPHA", "SEPARATOR", "SPEC_FORM", "MethodSpec", "check_method_settings",
           "check_method_specs",
           "method_name", "parse_method", "takes_igdm", "takes_loss_scale", "takes_weight_averaging"]
