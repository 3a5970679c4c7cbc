"""The timer task of one session: response timeouts, ack deadlines, enquire_link.

Every ``tick`` (at most a quarter second, and at most an eighth of the shortest
interval it enforces) it

* asks the core which requests have expired: a timed-out request closes the
  session (the SMSC is not answering) and fails every request waiting on it;
* answers ESME_RX_T_APPN for the inbound items the caller did not ack within
  ``ack_timeout`` (``deliver_sm_ack_timed_out``), all in one flush;
* answers 0 for the parts of a multi-part MO still incomplete after
  ``ack_timeout``, keeping them in the assembler (the trade-off described in
  ``smscd.link._inbound``), and drops from the assembler the messages whose
  first part is older than its max age (``mo_parts_expired``);
* sends enquire_link after ``enquire_link_interval`` without anything read,
  while no enquire_link of its own is waiting.

Time is read only through ``trio.current_time()`` and handed to the core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import trio

from smscd.link._inbound import answer_all
from smscd.link._session import WRITE_ERRORS
from smscd.numbers import mask_msisdn
from smscd.smpp import Bind, CommandStatus, EnquireLink, SmppError, response_for

if TYPE_CHECKING:
    from smscd.link._hub import Hub
    from smscd.link._inbound import Inbound
    from smscd.link._session import Session

__all__ = ["ASSEMBLY_MAX_AGE", "run_timers"]

#: How long the assembler keeps the parts of an incomplete multi-part MO.
ASSEMBLY_MAX_AGE: Final = 60.0


async def run_timers(hub: Hub, inbound: Inbound, session: Session) -> None:
    """Run until the session closes (see the module docstring)."""
    config = hub.config
    log = hub.log
    tick = min(0.25, config.response_timeout / 8, config.ack_timeout / 8)
    tick = min(tick, config.enquire_link_interval / 8)
    conn = session.conn
    while True:
        await trio.sleep(tick)
        now = trio.current_time()
        expired = conn.expired_requests(now)
        if expired:
            for request in expired:
                pending = session.pending.pop(request.sequence, None)
                if pending is not None:
                    pending.fail("timeout")
                if isinstance(request, EnquireLink):
                    log.warning("enquire_link_timed_out", sequence=request.sequence)
                elif isinstance(request, Bind):
                    pass  # reported (once per streak) as bind_failed by the supervisor
                else:
                    log.warning(
                        "request_timed_out",
                        command=type(request).__name__,
                        sequence=request.sequence,
                    )
            session.close("response_timeout")
            return
        late = [a for a in session.held if a.deadline <= now]
        for ack in late:
            log.warning("deliver_sm_ack_timed_out", parts=len(ack.parts))
            ack.timed_out = True
        if late:
            await answer_all(late, CommandStatus.ESME_RX_T_APPN)
        overdue = [
            (sequence, part)
            for sequence, part in session.waiting_parts.items()
            if part.deadline <= now
        ]
        if overdue:
            # The multi-part trade-off: answer 0, keep it in the assembler. Out of
            # waiting_parts before the first await: the reader, woken by the room
            # this frees, may complete their message meanwhile.
            for sequence, _part in overdue:
                del session.waiting_parts[sequence]
            inbound.answered(session, len(overdue))
            for sequence, part in overdue:
                log.info("mo_part_answered_incomplete", sequence=sequence)
                await session.reply(response_for(part.deliver))
        for partial in inbound.assembler.expire(
            now, max_age=ASSEMBLY_MAX_AGE, gsm7_default=config.gsm7_default
        ):
            log.warning(
                "mo_parts_expired",
                msisdn=mask_msisdn(partial.source_addr),
                received=len(partial.received),
                total=partial.total,
            )
        enquire = session.enquire
        if (
            session.bound
            and (enquire is None or enquire.done.is_set())
            and now - session.last_received >= config.enquire_link_interval
        ):
            try:
                session.enquire = await session.request(EnquireLink(sequence=conn.next_sequence()))
            except (SmppError, *WRITE_ERRORS):
                session.close("write_failed")
                return
