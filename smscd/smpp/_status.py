"""SMPP 3.4 ``command_status`` values (spec §5.1.3) and how to react to them.

Which statuses are *temporary* (worth retrying later on the same bind) is a policy
choice, made here once so the driver and the pipeline agree:

* throttling (:func:`is_throttling`): ``ESME_RTHROTTLED`` (0x58) and
  ``ESME_RMSGQFUL`` (0x14). The carrier asks us to slow down: pause the whole bind
  for a while, then resume (retrying the one message reorders traffic).
* other temporary failures (:func:`is_temporary`): the throttling pair plus
  ``ESME_RSYSERR`` (0x08, the SMSC's own trouble), ``ESME_RX_T_APPN`` (0x64, the
  "temporary application error" of the spec), ``ESME_RSUBMITFAIL`` (0x45, which most
  SMSCs use for transient routing/HLR failures), ``ESME_RDELIVERYFAILURE`` (0xFE,
  data_sm delivery failure, transient by definition) and ``ESME_RUNKNOWNERR`` (0xFF,
  unknown: retrying is cheaper than losing the reply), plus every vendor-specific
  status (0x400-0x4FF) since we cannot know their meaning.
* everything else (bad address, bad bind, invalid field, ``ESME_RX_P_APPN``,
  ``ESME_RX_R_APPN``...) is permanent: the same PDU will fail the same way again.
"""

from __future__ import annotations

import enum

__all__ = ["CommandStatus", "is_temporary", "is_throttling"]


class CommandStatus(enum.IntEnum):
    """The SMPP 3.4 error codes, by their spec names (Table 5-2)."""

    ESME_ROK = 0x00000000  #: No error
    ESME_RINVMSGLEN = 0x00000001  #: Message length is invalid
    ESME_RINVCMDLEN = 0x00000002  #: Command length is invalid
    ESME_RINVCMDID = 0x00000003  #: Invalid command ID
    ESME_RINVBNDSTS = 0x00000004  #: Incorrect BIND status for given command
    ESME_RALYBND = 0x00000005  #: ESME already in bound state
    ESME_RINVPRTFLG = 0x00000006  #: Invalid priority flag
    ESME_RINVREGDLVFLG = 0x00000007  #: Invalid registered delivery flag
    ESME_RSYSERR = 0x00000008  #: System error
    ESME_RINVSRCADR = 0x0000000A  #: Invalid source address
    ESME_RINVDSTADR = 0x0000000B  #: Invalid destination address
    ESME_RINVMSGID = 0x0000000C  #: Message ID is invalid
    ESME_RBINDFAIL = 0x0000000D  #: Bind failed
    ESME_RINVPASWD = 0x0000000E  #: Invalid password
    ESME_RINVSYSID = 0x0000000F  #: Invalid system ID
    ESME_RCANCELFAIL = 0x00000011  #: cancel_sm failed
    ESME_RREPLACEFAIL = 0x00000013  #: replace_sm failed
    ESME_RMSGQFUL = 0x00000014  #: Message queue full
    ESME_RINVSERTYP = 0x00000015  #: Invalid service type
    ESME_RINVNUMDESTS = 0x00000033  #: Invalid number of destinations
    ESME_RINVDLNAME = 0x00000034  #: Invalid distribution list name
    ESME_RINVDESTFLAG = 0x00000040  #: Destination flag is invalid (submit_multi)
    ESME_RINVSUBREP = 0x00000042  #: Invalid submit with replace request
    ESME_RINVESMCLASS = 0x00000043  #: Invalid esm_class field data
    ESME_RCNTSUBDL = 0x00000044  #: Cannot submit to distribution list
    ESME_RSUBMITFAIL = 0x00000045  #: submit_sm or submit_multi failed
    ESME_RINVSRCTON = 0x00000048  #: Invalid source address TON
    ESME_RINVSRCNPI = 0x00000049  #: Invalid source address NPI
    ESME_RINVDSTTON = 0x00000050  #: Invalid destination address TON
    ESME_RINVDSTNPI = 0x00000051  #: Invalid destination address NPI
    ESME_RINVSYSTYP = 0x00000053  #: Invalid system_type field
    ESME_RINVREPFLAG = 0x00000054  #: Invalid replace_if_present flag
    ESME_RINVNUMMSGS = 0x00000055  #: Invalid number of messages
    ESME_RTHROTTLED = 0x00000058  #: Throttling error (ESME exceeded allowed rate)
    ESME_RINVSCHED = 0x00000061  #: Invalid scheduled delivery time
    ESME_RINVEXPIRY = 0x00000062  #: Invalid message validity period
    ESME_RINVDFTMSGID = 0x00000063  #: Predefined message invalid or not found
    ESME_RX_T_APPN = 0x00000064  #: ESME receiver temporary app error code
    ESME_RX_P_APPN = 0x00000065  #: ESME receiver permanent app error code
    ESME_RX_R_APPN = 0x00000066  #: ESME receiver reject message error code
    ESME_RQUERYFAIL = 0x00000067  #: query_sm request failed
    ESME_RINVOPTPARSTREAM = 0x000000C0  #: Error in the optional part of the PDU body
    ESME_ROPTPARNOTALLWD = 0x000000C1  #: Optional parameter not allowed
    ESME_RINVPARLEN = 0x000000C2  #: Invalid parameter length
    ESME_RMISSINGOPTPARAM = 0x000000C3  #: Expected optional parameter missing
    ESME_RINVOPTPARAMVAL = 0x000000C4  #: Invalid optional parameter value
    ESME_RDELIVERYFAILURE = 0x000000FE  #: Delivery failure (data_sm_resp)
    ESME_RUNKNOWNERR = 0x000000FF  #: Unknown error


_THROTTLING = frozenset({CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL})

_TEMPORARY = _THROTTLING | frozenset(
    {
        CommandStatus.ESME_RSYSERR,
        CommandStatus.ESME_RX_T_APPN,
        CommandStatus.ESME_RSUBMITFAIL,
        CommandStatus.ESME_RDELIVERYFAILURE,
        CommandStatus.ESME_RUNKNOWNERR,
    }
)

#: SMPP 3.4 reserves 0x400-0x4FF for SMSC-vendor-specific errors.
_VENDOR_RANGE = range(0x400, 0x500)


def is_throttling(status: int) -> bool:
    """True for the statuses that mean "slow the whole bind down" (0x58, 0x14)."""
    return status in _THROTTLING


def is_temporary(status: int) -> bool:
    """True when the same PDU may succeed if sent again later (see module doc)."""
    return status in _TEMPORARY or status in _VENDOR_RANGE
