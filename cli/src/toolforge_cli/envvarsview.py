"""Human views of envvars API answers (pure: data in, renderable out). Every value from the
API is a :class:`rich.text.Text`, never markup.

Values are secrets. As upstream's ``toolforge-envvars`` 0.0.16 does, ``list`` shows
:data:`HIDDEN_VALUE` in their place unless asked (``--show-values``), and ``--truncate`` cuts
shown values at :data:`TRUNCATE_LENGTH` characters (:func:`shown_value`).
"""

from __future__ import annotations

from collections.abc import Iterable

from rich import box
from rich.table import Table
from rich.text import Text

from toolforge_cli.envvarsapi import Envvar, EnvvarsQuota

__all__ = [
    "HIDDEN_VALUE",
    "TRUNCATE_LENGTH",
    "envvars_table",
    "quota_table",
    "shown_value",
]

#: What ``list`` prints instead of a value (upstream's ``HIDDEN_VALUE``).
HIDDEN_VALUE = "*" * 16
#: ``--truncate`` keeps this many characters (upstream's ``TRUNCATE_LENGTH``).
TRUNCATE_LENGTH = 50


def shown_value(value: str, *, show: bool, truncate: bool) -> str:
    """The value as a table shows it: :data:`HIDDEN_VALUE` unless ``show``; with
    ``truncate``, a value of :data:`TRUNCATE_LENGTH` characters or more becomes its first
    :data:`TRUNCATE_LENGTH` characters and ``...`` (upstream's rule, ``>=`` included)."""
    if not show:
        return HIDDEN_VALUE
    if truncate and len(value) >= TRUNCATE_LENGTH:
        return value[:TRUNCATE_LENGTH] + "..."
    return value


def _table(*headers: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def envvars_table(
    envvars: Iterable[Envvar], *, show_values: bool = False, truncate: bool = False
) -> Table:
    """``Name``, ``Value`` columns, one row per variable; values as :func:`shown_value`
    says."""
    table = _table("Name", "Value")
    for envvar in envvars:
        value = shown_value(envvar.value, show=show_values, truncate=truncate)
        table.add_row(Text(envvar.name), Text(value))
    return table


def quota_table(quota: EnvvarsQuota) -> Table:
    """``quota``: ``Quota``, ``Used``, ``Available`` (quota - used), as upstream's columns."""
    table = _table("Quota", "Used", "Available")
    table.add_row(Text(str(quota.quota)), Text(str(quota.used)), Text(str(quota.available)))
    return table
