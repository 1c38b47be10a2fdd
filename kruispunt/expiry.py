"""Certificate expiry reminders for serving processes, and the date arithmetic doctors share.

A serving process (`psi_node.server`, `coordinator.server`) logs `expiry_warnings`
from its housekeeping loop so a certificate nearing its end shows in the journal a
month ahead; `ExpiryReminder` repeats them once a day rather than on every tick. The
doctors' expiry checks (`kruispunt.doctor.check_expiry`) use the same threshold and
wording. Nothing here imports the doctor framework: servers need only this module.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping

from cryptography import x509

from kruispunt import pki
from kruispunt.errors import ConfigError
from kruispunt.wording import plural

__all__ = [
    "EXPIRY_WARN_DAYS",
    "ExpiryReminder",
    "days_left",
    "days_phrase",
    "expiry_warnings",
    "format_moment",
    "moment_or_now",
    "readable_certificates",
]

#: A certificate that expires within this many days gets a warning (doctor and logs).
EXPIRY_WARN_DAYS = 30


def moment_or_now(now: dt.datetime | None) -> dt.datetime:
    """`now`, or the current UTC time when None; ValueError for a naive datetime."""
    moment = now if now is not None else dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return moment


def format_moment(moment: dt.datetime) -> str:
    """`moment` in UTC to the minute, as people read it: 2026-12-01 15:40 UTC."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def days_left(cert: x509.Certificate, now: dt.datetime) -> float:
    """Days (fractional) until `cert` expires at `now`; zero or less once it has."""
    return pki.certificate_expires_in(cert, now).total_seconds() / 86400


def days_phrase(days: float) -> str:
    """Whole days for a person: "less than a day", "1 day", "12 days"."""
    whole = int(days)
    if whole < 1:
        return "less than a day"
    return plural(whole, "day")


def expiry_warnings(
    certs: Mapping[str, x509.Certificate], now: dt.datetime | None = None
) -> list[str]:
    """Log lines for every certificate in `certs` (label -> certificate) that needs renewal.

    One line per certificate that has expired or expires within `EXPIRY_WARN_DAYS`,
    in label order; an empty list when all is well. Serving processes log these from
    their housekeeping loop so the warning shows in the journal a month ahead.
    """
    moment = moment_or_now(now)
    out = []
    for label in sorted(certs):
        cert = certs[label]
        days = days_left(cert, moment)
        until = format_moment(cert.not_valid_after_utc)
        if days <= 0:
            out.append(f"certificate {label} expired on {until}: renew it now")
        elif days < EXPIRY_WARN_DAYS:
            out.append(f"certificate {label} expires in {days_phrase(days)}, on {until}: renew it")
    return out


def readable_certificates(
    files: Iterable[tuple[str, str | os.PathLike[str]]],
) -> dict[str, x509.Certificate]:
    """The certificates of (label, path) pairs a serving process watches, by label.

    An unreadable or invalid file is left out: the doctor reports it, and the
    housekeeping loop that asks must not stop over it.
    """
    out: dict[str, x509.Certificate] = {}
    for label, path in files:
        try:
            out[label] = pki.load_certificate(path)
        except ConfigError:
            continue
    return out


class ExpiryReminder:
    """Repeats `expiry_warnings` at most once per `interval` for each certificate.

    A housekeeping loop runs every minute; the journal needs the warning once a day,
    not 1,440 times. Keep one reminder per process and call `warnings` every tick.
    """

    def __init__(self, interval: dt.timedelta = dt.timedelta(days=1)) -> None:
        if interval <= dt.timedelta(0):
            raise ValueError("interval must be positive")
        self.interval = interval
        self._last: dict[str, dt.datetime] = {}

    def warnings(
        self, certs: Mapping[str, x509.Certificate], now: dt.datetime | None = None
    ) -> list[str]:
        """The expiry warnings due now: each certificate's at most once per interval."""
        moment = moment_or_now(now)
        due = []
        for label in sorted(certs):
            lines = expiry_warnings({label: certs[label]}, moment)
            if not lines:
                self._last.pop(label, None)  # renewed: warn at once if it nears its end again
                continue
            last = self._last.get(label)
            if last is None or moment - last >= self.interval:
                self._last[label] = moment
                due.extend(lines)
        return due
