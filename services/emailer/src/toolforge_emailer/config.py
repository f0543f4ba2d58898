"""The live configuration of the emailer: the keys of upstream's jobs-emailer ConfigMap
(REFERENCE.md, "Emailer (upstream jobs-emailer, configuration keys)") plus a few of ours.

The daemon re-reads the ConfigMap every ``task_read_configmap_sleep`` seconds; each read is
validated by :class:`EmailConfig`. A valid read replaces the configuration in force; an invalid
one is logged and the last good configuration stays (:mod:`toolforge_emailer.service`).

ConfigMap values are strings: numbers are parsed, booleans accept ``yes/no``, ``true/false``,
``on/off``, ``1/0`` (upstream writes ``send_emails_for_real: "yes"``). Unknown keys are errors,
so a typo does not pass silently. Durations are in seconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

__all__ = ["EmailConfig", "config_errors", "parse_config"]

# An address in the form SMTP's MAIL FROM takes: local@domain, no spaces, brackets or commas
# (so that nothing can be injected into a header); the full RFC 5322 grammar is not needed.
_ADDRESS_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")
# A DNS name (RFC 1123 labels), for the recipient domain and the SMTP server.
_DOMAIN_RE = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_PREFIX_RE = re.compile(r"[a-z0-9]([a-z0-9._-]{0,30}[a-z0-9])?")


def _address(value: str) -> str:
    if not _ADDRESS_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not an e-mail address (local@domain)")
    return value


def _domain(value: str) -> str:
    if not _DOMAIN_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a DNS name")
    return value


def _prefix(value: str) -> str:
    if not _PREFIX_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a mailbox prefix (lower-case letters, digits, . _ -)")
    return value


Address = Annotated[str, AfterValidator(_address)]
Domain = Annotated[str, AfterValidator(_domain)]
Prefix = Annotated[str, AfterValidator(_prefix)]


class EmailConfig(BaseModel):
    """The emailer's live configuration (defaults: upstream's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # ----- upstream's keys -----
    email_from_addr: Address = Field(
        default="noreply@toolforge.org", description="Sender (From and MAIL FROM)."
    )
    email_to_domain: Domain = Field(
        default="toolforge.org", description="Recipients are <prefix>.<tool>@<domain>."
    )
    email_to_prefix: Prefix = Field(default="tools", description="See email_to_domain.")
    send_emails_for_real: bool = Field(
        default=True, description="False: log each mail instead of sending it."
    )
    smtp_server_fqdn: Domain = Field(default="mail.toolforge.org", description="SMTP server.")
    smtp_server_port: int = Field(default=25, ge=1, le=65535, description="Its port.")
    task_compose_emails_loop_sleep: float = Field(
        default=400,
        gt=0,
        le=86400,
        description="A tool's events are batched into one mail this long after its first "
        "pending event.",
    )
    task_read_configmap_sleep: float = Field(
        default=10, gt=0, le=3600, description="How often the ConfigMap is re-read."
    )
    task_send_emails_loop_sleep: float = Field(
        default=10, gt=0, le=3600, description="How often the send loop runs."
    )
    task_send_emails_max: int = Field(
        default=10, ge=1, le=10000, description="At most this many mails per send loop."
    )
    task_watch_pods_timeout: int = Field(
        default=60,
        ge=1,
        le=3600,
        description="timeoutSeconds of one pod watch request (then re-opened from the last "
        "resourceVersion).",
    )
    # ----- ours -----
    smtp_timeout_seconds: float = Field(
        default=30, gt=0, le=600, description="Timeout of each SMTP connect, command and answer."
    )
    smtp_retry_min_seconds: float = Field(
        default=10,
        gt=0,
        le=86400,
        description="First back-off after a temporary failure (4xx answer or no connection); "
        "it doubles up to smtp_retry_max_seconds.",
    )
    smtp_retry_max_seconds: float = Field(
        default=600, gt=0, le=86400, description="Longest back-off between two attempts."
    )
    smtp_give_up_seconds: float = Field(
        default=172800,
        gt=0,
        description="A mail still not accepted this long after it was composed is given up "
        "(counted and logged as expired), like an MTA's queue lifetime.",
    )
    max_events_per_mail: int = Field(
        default=100, ge=1, le=1000, description="Events listed in one mail; the rest counted."
    )
    max_pending_events_per_tool: int = Field(
        default=500,
        ge=1,
        le=10000,
        description="Events kept per tool while its mail is pending; later ones are counted "
        "only (so one crash-looping tool cannot grow the state without bound).",
    )
    output_lines: int = Field(
        default=10, ge=0, le=100, description="Last lines of a job's output in its mail."
    )

    def recipient(self, tool: str) -> str:
        """``<email_to_prefix>.<tool>@<email_to_domain>``."""
        return f"{self.email_to_prefix}.{tool}@{self.email_to_domain}"


def parse_config(data: Mapping[str, str] | None) -> EmailConfig:
    """The configuration from a ConfigMap's ``data`` (missing keys take their defaults).

    Raises:
        pydantic.ValidationError: a bad value or an unknown key.
    """
    return EmailConfig.model_validate({k: v.strip() for k, v in (data or {}).items()})


def config_errors(error: ValidationError) -> list[str]:
    """``"<key>: <problem>"`` for each problem of a rejected configuration."""
    return [
        f"{'.'.join(str(p) for p in e['loc']) or 'configuration'}: {e['msg']}"
        for e in error.errors()
    ]
