"""One ``[[smsc]]`` table: a carrier bind (:class:`~smscd.link.LinkConfig`)
and how it is billed."""

from __future__ import annotations

import re
from typing import Any

from smscd.config._read import Reader
from smscd.config._secrets import read_password
from smscd.config._types import SmscConfig
from smscd.link import BindKind, LinkConfig
from smscd.reset import ChargingMode
from smscd.smpp import IdFormat

__all__ = ["read_smsc"]

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: Reserved: the ``carrier`` of an API reset's row.
_API_CARRIER = "api"


def read_smsc(source: str, index: int, table: object) -> SmscConfig:
    r = Reader(source, f"smsc[{index}]", table)
    name = r.text("name")
    if not _NAME.fullmatch(name):
        raise r.error("name", "must be a word of 1 to 64 letters, digits, - and _")
    if name == _API_CARRIER:
        # The carrier of the rows that record API resets (smscd.store._api_resets).
        raise r.error("name", f"{_API_CARRIER!r} is reserved for the HTTP API's resets")
    password, credential_origin = read_password(r, name)
    bind = r.choice("bind", "transceiver", tuple(kind.value for kind in BindKind))
    id_format = r.choice("message_id_format", "auto", ("auto", "hex", "dec"))
    charging = r.choice("charging", "mo", ("mo", "mt"))
    link = _link_config(r, name, password, bind, id_format)
    smsc = SmscConfig(
        link=link,
        charging=ChargingMode(charging),
        source_ton=r.integer("source_ton", 0, minimum=0, maximum=6),
        source_npi=r.integer("source_npi", 0, minimum=0, maximum=18),
        credential_origin=credential_origin,
    )
    r.finish()
    return smsc


def _link_config(r: Reader, name: str, password: str, bind: str, id_format: str) -> LinkConfig:
    backoff_initial = r.number("backoff_initial", 1.0, minimum=0.01, maximum=3600.0)
    backoff_max = r.number("backoff_max", 60.0, minimum=0.01, maximum=3600.0)
    if backoff_max < backoff_initial:
        raise r.error(
            "backoff_max", f"must be >= backoff_initial ({backoff_max:g} < {backoff_initial:g})"
        )
    fields: dict[str, Any] = {
        "name": name,
        "host": r.host("host"),
        "port": r.integer("port", 2775, maximum=65535),
        "system_id": r.smpp_text("system_id", empty=False),
        "password": password,
        "system_type": r.smpp_text("system_type", ""),
        "bind": BindKind(bind),
        "window": r.integer("window", 10, maximum=1000),
        "throughput": r.number("throughput", 50.0, minimum=0.0, maximum=10_000.0),
        "enquire_link_interval": r.number(
            "enquire_link_interval", 30.0, minimum=1.0, maximum=3600.0
        ),
        "response_timeout": r.number("response_timeout", 10.0, minimum=0.1, maximum=600.0),
        "connect_timeout": r.number("connect_timeout", 10.0, minimum=0.1, maximum=600.0),
        "backoff_initial": backoff_initial,
        "backoff_max": backoff_max,
        "throttle_pause": r.number("throttle_pause", 1.0, minimum=0.0, maximum=3600.0),
        "max_unacked": r.integer("max_unacked", 1000, maximum=100_000),
        "gsm7_default": r.flag("gsm7_default", True),
        "message_id_format": IdFormat[id_format.upper()],
    }
    try:
        return LinkConfig(**fields)
    except ValueError as exc:
        # LinkConfig's validators name the field first ("password is longer ...")
        # and never the value.
        field, _, reason = str(exc).partition(" ")
        raise r.error(field, reason) from exc
