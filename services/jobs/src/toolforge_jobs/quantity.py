"""Kubernetes resource quantities ("512Mi", "0.5", "100m", "1G", "2e3") as exact decimals.

Parsing follows ``k8s.io/apimachinery/pkg/api/resource`` (``quantity.go``:
``ParseQuantity`` and ``parseQuantityString``; ``suffix.go``: the suffix tables) so that a
value accepted or rejected here is accepted or rejected by the API server, and compares equal:

- grammar ``<sign>? <digits> ( "." <digits>? )? <suffix>``, where the number may also be
  ``.<digits>`` or ``<digits>.``;
- suffixes: decimal SI ``n u m "" k M G T P E`` (10^-9 .. 10^18), binary SI
  ``Ki Mi Gi Ti Pi Ei`` (2^10 .. 2^60), or a decimal exponent ``e<int>`` / ``E<int>``
  (``E`` alone is exa);
- deliberate differences: text without any digit (``"."``, ``"-"``, ``"Mi"``) is rejected
  where Go reads some of it as zero, and so are magnitudes of 10^100 and more (no resource
  comes near; it keeps arithmetic on hostile input cheap);
- a value with more than nine decimal places is rounded away from zero to a multiple of
  10^-9 (Go: ``amount.Round(amount, Nano, inf.RoundUp)``); binary values are capped at
  2^63-1.

No dependency of this project provides this (kubernetes_asyncio has no quantity type).
"""

from __future__ import annotations

import decimal
import re
from decimal import Decimal

__all__ = [
    "InvalidQuantityError",
    "format_count",
    "format_cpu",
    "format_memory",
    "parse_quantity",
]

_DECIMAL_SUFFIXES = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
# Go's splitREString, which its hand-written scanner implements.
_QUANTITY_RE = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?([eEinumkKMGTP]*[+-]?[0-9]*)")
_EXPONENT_RE = re.compile(r"[eE][+-]?[0-9]+")
_NANO = Decimal("1e-9")
_MAX_BINARY = Decimal(2**63 - 1)
_MAX_DIGITS = 100
# Exact arithmetic for every accepted value (100 integer digits + 9 decimals), and room for
# Go's int32 exponents before the size check.
_CONTEXT = decimal.Context(prec=2 * _MAX_DIGITS, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


class InvalidQuantityError(ValueError):
    """The text is not a Kubernetes quantity; the message says why."""


def parse_quantity(text: str) -> Decimal:
    """Parse a Kubernetes quantity into its exact value (cores, bytes or a count).

    ``"512Mi"`` -> ``536870912``, ``"100m"`` -> ``0.1``, ``"2e3"`` -> ``2000``.

    Raises:
        InvalidQuantityError: empty text, a character outside the grammar, or an unknown
            suffix (``"1K"``, ``"1ki"``, ``"1e"``), with a message naming the problem.
    """
    match = _QUANTITY_RE.fullmatch(text)
    if match is None:
        raise InvalidQuantityError(f"{text!r} is not a quantity (examples: 512Mi, 1Gi, 100m, 0.5)")
    sign, number, fraction, suffix = match.groups()
    if not (number or fraction):
        raise InvalidQuantityError(f"{text!r} has no digits (examples: 512Mi, 1Gi, 100m, 0.5)")
    if suffix in _DECIMAL_SUFFIXES:
        base, exponent = 10, _DECIMAL_SUFFIXES[suffix]
    elif suffix in _BINARY_SUFFIXES:
        base, exponent = 2, _BINARY_SUFFIXES[suffix]
    elif _EXPONENT_RE.fullmatch(suffix) and len(suffix) <= 12 and abs(int(suffix[1:])) < 2**31:
        base, exponent = 10, int(suffix[1:])
    else:
        raise InvalidQuantityError(
            f"{text!r} has an unknown suffix {suffix!r} "
            "(use one of Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or e<exponent>)"
        )
    with decimal.localcontext(_CONTEXT):
        amount = Decimal(f"{number or '0'}.{fraction or '0'}")
        # Binary values are capped like Go's maxAllowed; decimal ones are not.
        amount = amount.scaleb(exponent) if base == 10 else min(amount * 2**exponent, _MAX_BINARY)
        if amount.adjusted() >= _MAX_DIGITS:
            raise InvalidQuantityError(f"{text!r} is too large")
        if amount.adjusted() < 0 or amount != amount.to_integral_value():
            try:
                amount = amount.quantize(_NANO, rounding=decimal.ROUND_UP)
            except decimal.InvalidOperation:
                raise InvalidQuantityError(f"{text!r} has too many digits") from None
        return (-amount if sign == "-" else amount).normalize()


def _trim(value: Decimal) -> str:
    """``value`` in plain notation without trailing zeros (``1.50`` -> ``1.5``)."""
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_memory(value: Decimal) -> str:
    """Bytes for humans with the largest binary suffix not above the value, at most two
    decimals: ``4294967296`` -> ``"4Gi"``, ``1610612736`` -> ``"1.5Gi"``, ``100`` -> ``"100"``.
    """
    sign = "-" if value < 0 else ""
    with decimal.localcontext(_CONTEXT):
        magnitude = abs(value)
        for suffix, exponent in sorted(_BINARY_SUFFIXES.items(), key=lambda kv: -kv[1]):
            unit = Decimal(2**exponent)
            if magnitude >= unit:
                return f"{sign}{_trim(round(magnitude / unit, 2))}{suffix}"
        text = _trim(round(magnitude, 2))
        return text if text == "0" else f"{sign}{text}"


def format_cpu(value: Decimal) -> str:
    """Cores for humans: whole cores as a number (``"1"``), anything else in millicores
    rounded up (``0.5`` -> ``"500m"``, ``1.25`` -> ``"1250m"``).
    """
    with decimal.localcontext(_CONTEXT):
        if value == value.to_integral_value():
            return _trim(value)
        millis = (value * 1000).to_integral_value(rounding=decimal.ROUND_UP)
        return f"{_trim(millis)}m"


def format_count(value: Decimal) -> str:
    """A count (pods, services) as a plain number: ``Decimal("10")`` -> ``"10"``."""
    return _trim(value)
