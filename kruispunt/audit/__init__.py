"""Hash-chained, signed audit events: the chain logic both audit logs share.

Storage lives elsewhere (`coordinator.audit` keeps the chain in SQLite,
`psi_node.audit` in a JSON Lines file, both on `ChainedLog`); this package owns
what an event is, how it is encoded, chained, signed and verified, and how an
event list is written to and read from JSON Lines and CSV exports. Import from
the package; its modules each have one job:

- `event`: the event model, the documented event names, required details;
- `guard`: the identifier guard that refuses identifier-like details;
- `codec`: canonical encoding and the JSON Lines / CSV export codecs;
- `seal`: hashing an event onto the chain and signing it;
- `verify`: chain and signature verification (`VerifyReport`);
- `handover`: a chain handed from one signing key to the next, either key verifying it;
- `store`: `ChainedLog`, the base of the SQLite and JSON Lines stores;
- `heads`: chain heads as a manifest, a consent and a receipt carry them;
- `witness`: verifying the coordinator's and the nodes' logs against each other.

Fields follow NEN 7513 / BIO 12.4 (who did what, when, on whose behalf, from
where, on which authorisation): `seq`, `time`, `event`, `actor`,
`on_behalf_of`, `access_point`, `action`, `basis`, `round_id`, `details`,
then the chain fields `prev_hash`, `hash`, `key_id`, `signature`.

Event names (a free dotted lower-case string; the ones in use):

=====================  =====  ==========================================
event                  where  meaning
=====================  =====  ==========================================
round.created          coord  a round manifest was created and signed
round.rejected         coord  a request for a round was refused (reason)
manifest.seen          node   the node received (and checked) a manifest
manifest.rejected      node   a manifest failed its checks (reason)
consent.given          both   a partner consented to a round
consent.refused        both   a partner refused a round (reason)
phase.done             coord  a protocol phase finished (phase, seconds)
set_sizes              coord  the set size each partner contributed
records.sent           node   the node sent its blinded records (set_size)
tally.summary          coord  flagged count and overlap histogram
results.delivered      coord  a partner's results were delivered
results.received       node   the node received and staged its results
results.written        node   the node wrote its results file
results.deleted        node   a results file was deleted (retention; receipt signed)
deletion.received      coord  a node's signed deletion receipt, verified and stored
deletion.refused       coord  a deletion receipt refused (forged, replayed, other)
round.completed        coord  a round ended with results everywhere
round.failed           both   a round ended in error (reason)
round.aborted          both   an operator or shutdown aborted a round
round.cancelled        coord  an operator cancelled a running round (who, why)
round.cancel_refused   coord  a cancellation came while results were published
round.retry            coord  a scheduled round that failed transiently runs again
schedule.failed        coord  a scheduled round did not complete; notification sent
operator.added         coord  a person was issued an operator certificate
operator.renewed       coord  an operator's certificate was renewed
operator.removed       coord  an operator was removed (certificates refused)
access.refused         coord  the admin service refused an operator certificate
partner.added          coord  a partner was registered
purpose.added          coord  a purpose was registered
purpose.changed        coord  a purpose was changed
operator.action        both   any other operator action (verb in action)
=====================  =====  ==========================================

`details` holds aggregates only (counts, sizes, histogram buckets, partner and
purpose ids, reasons) and never an identifier; `check_no_identifiers` enforces
that before anything is sealed.
"""

from kruispunt.audit.codec import (
    ExportFormat,
    canonical_bytes,
    dump_csv,
    dump_jsonl,
    event_from_dict,
    event_from_json,
    event_to_dict,
    event_to_json,
    load_csv,
    load_jsonl,
)
from kruispunt.audit.event import (
    COORDINATOR_REQUIRED_DETAILS,
    EVENTS,
    FIELDS,
    GENESIS_HASH,
    NODE_REQUIRED_DETAILS,
    AuditEvent,
    ChainHead,
    Clock,
    check_required_details,
    format_time,
    iter_rounds,
    utc_now,
)
from kruispunt.audit.guard import check_no_identifiers, safe_reason
from kruispunt.audit.handover import (
    HANDOVER_EVENT,
    Handover,
    handover_details,
    read_handover,
    trusted_keys,
)
from kruispunt.audit.heads import head_from_proto, head_to_proto
from kruispunt.audit.seal import AUDIT_CONTEXT, compute_hash, seal
from kruispunt.audit.store import ChainedLog
from kruispunt.audit.verify import PublicKeys, VerifyReport, verify_events, verify_excerpt

__all__ = [
    "AUDIT_CONTEXT",
    "COORDINATOR_REQUIRED_DETAILS",
    "EVENTS",
    "FIELDS",
    "GENESIS_HASH",
    "HANDOVER_EVENT",
    "NODE_REQUIRED_DETAILS",
    "AuditEvent",
    "ChainHead",
    "ChainedLog",
    "Clock",
    "ExportFormat",
    "Handover",
    "PublicKeys",
    "VerifyReport",
    "canonical_bytes",
    "check_no_identifiers",
    "check_required_details",
    "compute_hash",
    "dump_csv",
    "dump_jsonl",
    "event_from_dict",
    "event_from_json",
    "event_to_dict",
    "event_to_json",
    "format_time",
    "handover_details",
    "head_from_proto",
    "head_to_proto",
    "iter_rounds",
    "load_csv",
    "load_jsonl",
    "read_handover",
    "safe_reason",
    "seal",
    "trusted_keys",
    "utc_now",
    "verify_events",
    "verify_excerpt",
]
