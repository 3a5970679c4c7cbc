"""What must hold whatever an SMSC sends to the ESME side of the core.

Shared by the core fuzzer (:mod:`tests.fuzz.fuzz_core`) and the property tests:

1. ``Connection.next_event()`` yields events or raises a RemoteProtocolError
   subclass (PduRejected, FramingError) -- nothing else; after a FramingError it
   raises one again. A PduRejected's reply, when there is one, decodes to a
   response with the same sequence and the same non-zero status.
2. The outcome is the same whether the bytes come whole, in a few chunks or one
   byte at a time.
3. When the PDU is correctly framed (and not over the framing's hard limit of
   1 MiB), the connection stays usable: no FramingError, and a valid deliver_sm
   sent after it comes out (or, if the PDU changed the session state, is refused
   for that reason alone).
4. Every event that comes out satisfies the edge limits (:func:`edge_violations`):
   addresses printable ASCII of at most 20 octets (an MO's source_addr never
   empty), other C-strings printable and within their SMPP maxima, message bodies
   within MAX_MESSAGE_OCTETS and decoding to storable text, the replies the
   daemon builds encodable, receipts either parsed (id printable ASCII <= 64,
   stat/err <= 16) or refused with ReceiptError, message_id_keys never raising
   and giving keys of at most 80 printable characters, SubmitSmResp.message_id
   printable ASCII <= 64.
"""

from __future__ import annotations

import copy
import itertools
import types
from typing import TYPE_CHECKING, Final, TypeAlias

import attrs

from smscd.smpp import (
    MAX_ADDRESS_OCTETS,
    MAX_ID_KEY_CHARS,
    MAX_MESSAGE_ID_OCTETS,
    MAX_MESSAGE_OCTETS,
    MAX_SKIPPED_PDU_SIZE,
    MAX_STAT_OCTETS,
    Bind,
    BindMode,
    BindResp,
    CommandStatus,
    Connection,
    DeliverSm,
    EnquireLink,
    FramingError,
    IdFormat,
    MessageAssembler,
    NeedData,
    PduRejected,
    ReceiptError,
    Response,
    Role,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    decode,
    decode_short_message,
    encode,
    is_receipt,
    message_id_keys,
    parse_receipt,
    response_for,
)
from smscd.smpp._framing import FrameReader
from tests.fuzz.mutate import (
    BIND_SEQUENCE,
    ENQUIRE_SEQUENCE,
    FIXTURES,
    SUBMIT_SEQUENCES,
    UNBIND_SEQUENCE,
)

if TYPE_CHECKING:
    from smscd.smpp import Event

__all__ = [
    "PROBE",
    "CaseResult",
    "check_pdu",
    "edge_violations",
    "esme_for",
]

_BIND_RESP_IDS: Final = frozenset({0x80000001, 0x80000002, 0x80000009})
_UNBIND_RESP_ID: Final = 0x80000006
_TAG_MESSAGE_PAYLOAD: Final = 0x0424
_BIND_RESP: Final = dict(FIXTURES)["bind_transceiver_resp"]

#: The valid deliver_sm sent after a correctly framed PDU (invariant 3).
PROBE: Final = DeliverSm(
    sequence=0x7777,
    source_addr_ton=1,
    source_addr_npi=1,
    source_addr="84912345678",
    destination_addr="8079",
    short_message=b"BH MK 0123456789",
)
_PROBE_WIRE: Final = encode(PROBE)

#: An outcome: an event, ("rejected", sequence, status, reply) or ("framing",).
Outcome: TypeAlias = "Event | tuple[object, ...]"


def _build_esme(command_id: int) -> Connection:
    conn = Connection(Role.ESME)
    conn.send(
        Bind(sequence=BIND_SEQUENCE, mode=BindMode.TRANSCEIVER, system_id="vss", password="pw")
    )
    if command_id in _BIND_RESP_IDS:
        return conn
    conn.receive_data(_BIND_RESP)
    bound = conn.next_event()
    assert isinstance(bound, BindResp), bound
    for seq in SUBMIT_SEQUENCES:
        conn.send(SubmitSm(sequence=seq, destination_addr="84912345678", short_message=b"x"))
    conn.send(EnquireLink(sequence=ENQUIRE_SEQUENCE))
    if command_id == _UNBIND_RESP_ID:
        conn.send(Unbind(sequence=UNBIND_SEQUENCE))
    return conn


#: The attributes of a Connection _clone knows how to copy; a Connection with
#: others is rebuilt instead, never half-copied.
_CLONED: Final = frozenset(
    {
        "_deadlines",
        "_framing_error",
        "_inbound",
        "_machine",
        "_next_seq",
        "_outstanding",
        "_outstanding_view",
        "_peer",
        "_reader",
        "_role",
        "max_pdu_size",
        "response_timeout",
    }
)


def _clone(template: Connection) -> Connection | None:
    """A copy of an idle ``template`` (empty buffer, no error) sharing no mutable
    state with it, about twenty times cheaper than replaying the bind and the
    sends; None when Connection's layout is not the one known here."""
    if set(vars(template)) != _CLONED:
        return None
    conn = copy.copy(template)
    conn._reader = FrameReader(template.max_pdu_size)
    conn._machine = attrs.evolve(template._machine)
    conn._outstanding = dict(template._outstanding)
    conn._deadlines = dict(template._deadlines)
    conn._outstanding_view = types.MappingProxyType(conn._outstanding)
    conn._inbound = dict(template._inbound)
    return conn


_TEMPLATES: dict[int, Connection] = {}


def esme_for(raw: bytes) -> Connection:
    """A fresh ESME Connection in the state ``raw`` is meant for: binding (for a
    bind_resp), unbinding (for an unbind_resp) or bound as transceiver with
    submit_sm and enquire_link outstanding (everything else)."""
    command_id = int.from_bytes(raw[4:8], "big") if len(raw) >= 8 else 0
    if command_id not in _BIND_RESP_IDS and command_id != _UNBIND_RESP_ID:
        command_id = 0
    template = _TEMPLATES.get(command_id)
    if template is None:
        template = _TEMPLATES[command_id] = _build_esme(command_id)
    return _clone(template) or _build_esme(command_id)


def _printable(value: str, limit: int) -> bool:
    return len(value) <= limit and value.isascii() and value.isprintable()


def _storable(where: str, text: str, problems: list[str]) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        problems.append(f"{where}: text holds a lone surrogate")
    if "\0" in text:
        problems.append(f"{where}: text holds NUL")


def _keys(where: str, message_id: str, problems: list[str]) -> None:
    for fmt in IdFormat:
        for key in message_id_keys(message_id, fmt):
            if not _printable(key, MAX_ID_KEY_CHARS):
                problems.append(f"{where}: message_id_keys({fmt.value}) gave an unsafe key")


def _deliver_violations(event: DeliverSm, problems: list[str]) -> None:
    receipt = is_receipt(event)
    if not _printable(event.source_addr, MAX_ADDRESS_OCTETS):
        problems.append("deliver_sm: source_addr not printable ASCII <= 20")
    if not receipt and not event.source_addr:
        problems.append("deliver_sm: MO with an empty source_addr")
    if not _printable(event.destination_addr, MAX_ADDRESS_OCTETS):
        problems.append("deliver_sm: destination_addr not printable ASCII <= 20")
    for name, limit in (
        ("service_type", 5),
        ("schedule_delivery_time", 16),
        ("validity_period", 16),
    ):
        if not _printable(getattr(event, name), limit):
            problems.append(f"deliver_sm: {name} not printable ASCII <= {limit}")
    body = event.short_message
    if not body:
        body = next((t.value for t in event.tlvs if t.tag == _TAG_MESSAGE_PAYLOAD), b"")
    if len(body) > MAX_MESSAGE_OCTETS:
        problems.append("deliver_sm: body over MAX_MESSAGE_OCTETS")
    for gsm7 in (True, False):
        _storable(
            "decode_short_message",
            decode_short_message(event.data_coding, body, gsm7_default=gsm7),
            problems,
        )
        assembler = MessageAssembler()
        message = assembler.feed(event, now=0.0, gsm7_default=gsm7)
        if message is not None:
            _storable("assembled message", message.text, problems)
        for partial in assembler.expire(1e9, gsm7_default=gsm7):
            _storable("expired partial message", partial.text, problems)
    for status in (CommandStatus.ESME_ROK, CommandStatus.ESME_RX_T_APPN):
        encode(response_for(event, status))
    if receipt:
        try:
            parsed = parse_receipt(event)
        except ReceiptError:
            return
        if not parsed.message_id or not _printable(parsed.message_id, MAX_MESSAGE_ID_OCTETS):
            problems.append("receipt: message_id not printable ASCII 1..64")
        if not parsed.stat or not _printable(parsed.stat, MAX_STAT_OCTETS):
            problems.append("receipt: stat not printable ASCII 1..16")
        if not _printable(parsed.err, MAX_STAT_OCTETS):
            problems.append("receipt: err not printable ASCII <= 16")
        for date in (parsed.submit_date, parsed.done_date):
            if date and not (date.isascii() and date.isdigit() and len(date) in (10, 12)):
                problems.append("receipt: a date is not 10 or 12 ASCII digits")
        _keys("receipt", parsed.message_id, problems)
    else:
        # The reply the pipeline sends back to the sender.
        encode(
            SubmitSm(
                sequence=1,
                source_addr="8079",
                dest_addr_ton=event.source_addr_ton,
                dest_addr_npi=event.source_addr_npi,
                destination_addr=event.source_addr,
                short_message=b"Tin nhan sai cu phap.",
            )
        )


def edge_violations(event: Event) -> list[str]:
    """What is wrong with an event an ESME Connection handed out (module doc, 4.).

    An exception raised while checking (a reply that does not encode, a receipt
    parser raising something other than ReceiptError...) is a violation too.
    """
    problems: list[str] = []
    try:
        if isinstance(event, DeliverSm):
            _deliver_violations(event, problems)
        elif isinstance(event, SubmitSmResp):
            if not _printable(event.message_id, MAX_MESSAGE_ID_OCTETS):
                problems.append("submit_sm_resp: message_id not printable ASCII <= 64")
            _keys("submit_sm_resp", event.message_id, problems)
        elif isinstance(event, BindResp) and not _printable(event.system_id, 15):
            problems.append("bind_resp: system_id not printable ASCII <= 15")
    except Exception as exc:  # the fuzz target: any exception is a finding
        problems.append(f"{type(event).__name__}: {type(exc).__name__}: {exc}")
    return problems


@attrs.frozen(kw_only=True)
class CaseResult:
    """What one PDU did to the core."""

    #: Invariant violations; empty when the case passed.
    failures: tuple[str, ...]
    #: The kinds of refusal met ("PduRejected/ESME_RINVSRCADR", "FramingError",
    #: "ReceiptError"...).
    kinds: frozenset[str]


def _status_name(status: int) -> str:
    try:
        return CommandStatus(status).name
    except ValueError:
        return f"{status:#x}"


def _feed(
    conn: Connection, chunks: list[bytes], failures: list[str], kinds: set[str]
) -> list[Outcome]:
    """Feed the chunks (the last one is b"": EOF); record outcomes (invariant 1)."""
    seen: list[Outcome] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        while True:
            try:
                event = conn.next_event()
            except PduRejected as exc:
                kinds.add(f"PduRejected/{_status_name(exc.command_status)}")
                if exc.reply is not None:
                    try:
                        answer = decode(exc.reply)
                    except Exception as decode_exc:  # a reply we send must decode
                        failures.append(f"reply does not decode: {decode_exc!r}")
                    else:
                        if not (
                            isinstance(answer, Response)
                            and answer.sequence == exc.sequence
                            and answer.command_status == exc.command_status != 0
                        ):
                            failures.append(f"reply {answer!r} does not answer {exc!r}")
                seen.append(("rejected", exc.sequence, exc.command_status, exc.reply))
                continue
            except FramingError:
                kinds.add("FramingError")
                seen.append(("framing",))
                try:
                    conn.next_event()
                except FramingError:
                    pass
                else:
                    failures.append("FramingError was not raised again")
                return seen
            except Exception as exc:  # the fuzz target: anything else is a finding
                failures.append(f"next_event raised {type(exc).__name__}: {exc}")
                return seen
            if isinstance(event, NeedData):
                break
            seen.append(event)
    return seen


def check_pdu(raw: bytes, *, cuts: tuple[int, ...] = (), bytewise: bool = False) -> CaseResult:
    """Feed ``raw`` (then the probe when ``raw`` is correctly framed, then EOF) to
    fresh ESMEs whole, cut at ``cuts`` and, if asked, byte by byte; check every
    invariant of the module docstring."""
    failures: list[str] = []
    kinds: set[str] = set()
    framed = len(raw) >= 16 and int.from_bytes(raw[:4], "big") == len(raw)
    stream = raw + _PROBE_WIRE if framed else raw
    whole = _feed(esme_for(raw), [stream, b""], failures, kinds)
    ways = []
    if cuts:
        bounds = [0, *sorted(c for c in cuts if 0 < c < len(stream)), len(stream)]
        chunks = [stream[a:b] for a, b in itertools.pairwise(bounds) if b > a]
        ways.append(("in chunks", chunks))
    if bytewise:
        ways.append(("byte by byte", [stream[i : i + 1] for i in range(len(stream))]))
    for how, chunks in ways:
        other = _feed(esme_for(raw), [*chunks, b""], failures, set())
        if other != whole:
            failures.append(f"fed {how}, the outcome differs from fed whole")
    for outcome in whole:
        if isinstance(outcome, tuple):
            continue
        failures.extend(edge_violations(outcome))
        if isinstance(outcome, DeliverSm) and is_receipt(outcome):
            try:
                parse_receipt(outcome)
            except ReceiptError:
                kinds.add("ReceiptError")
            except Exception as exc:  # reported by edge_violations; named here
                kinds.add(type(exc).__name__)
    if framed and ("framing",) in whole:
        if len(raw) <= MAX_SKIPPED_PDU_SIZE:
            failures.append("a correctly framed PDU broke the framing")
    elif framed:
        # One outcome for the PDU, one for the probe: the framing did not slip.
        if len(whole) != 2:
            failures.append(f"{len(whole)} outcomes for one PDU and the probe")
        elif whole[1] != PROBE and not (
            isinstance(whole[1], tuple)
            and whole[1][1] == PROBE.sequence
            and whole[1][2] == CommandStatus.ESME_RINVBNDSTS
        ):
            failures.append(f"the valid deliver_sm after it came out as {whole[1]!r}")
    return CaseResult(failures=tuple(failures), kinds=frozenset(kinds))
