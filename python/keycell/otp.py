"""One-time passwords (HOTP, RFC 4226; TOTP, RFC 6238) whose secret never becomes a
Python string.

The secret lives in a guarded region owned by the :class:`HOTP`/:class:`TOTP` object,
beside the HMAC pads derived from it; it comes from a :class:`keycell.SecretKey` or from a
base32 ``bytearray`` decoded straight into that region (and wiped). Verification computes
and compares every code in the window in constant time and refuses a time step at or below
``last_counter``, so storing the returned counter makes a verifier replay-safe;
:class:`TotpVerifier` does that bookkeeping.

>>> from keycell import SecretKey
>>> from keycell.otp import TOTP, TotpVerifier
>>> totp = TOTP(SecretKey.generate(20))
>>> verifier = TotpVerifier(totp)
>>> step = verifier.verify(totp.at(1_700_000_000), at=1_700_000_000)
>>> verifier.last_counter == step
True
"""

from __future__ import annotations

import threading
import time

from ._native import HOTP, TOTP
from ._text_refusal import RefusesText
from .exceptions import InvalidCode

__all__ = ["HOTP", "TOTP", "InvalidCode", "TotpVerifier"]


class TotpVerifier(RefusesText):
    """A TOTP verifier that remembers the last accepted time step, so no code is accepted
    twice (and no code older than an accepted one).

    Persist :attr:`last_counter` (and :attr:`drift`) after each successful
    :meth:`verify` and pass them back to the constructor to restore the verifier. With
    ``track_drift=True`` the window is centred on the clock offset of the last accepted
    code (RFC 6238 section 6), so a token whose clock drifts slowly stays within it.
    Thread-safe: calls on one verifier are serialized.
    """

    def __init__(
        self,
        totp: TOTP,
        *,
        last_counter: int | None = None,
        past: int = 1,
        future: int = 1,
        track_drift: bool = False,
        drift: int = 0,
    ) -> None:
        if not isinstance(totp, TOTP):
            raise TypeError(f"totp must be a keycell.otp.TOTP, not {type(totp).__name__}")
        if last_counter is not None and (not isinstance(last_counter, int) or last_counter < 0):
            raise ValueError("last_counter must be None or a non-negative int")
        if not isinstance(drift, int) or abs(drift) > 1000:
            raise ValueError("drift must be an int between -1000 and 1000 (time steps)")
        self._totp = totp
        self._last = last_counter
        self._past = past
        self._future = future
        self._track_drift = track_drift
        self._drift = drift if track_drift else 0
        self._lock = threading.Lock()

    @property
    def totp(self) -> TOTP:
        """The :class:`TOTP` this verifier checks codes with."""
        return self._totp

    @property
    def last_counter(self) -> int | None:
        """The time step of the last accepted code (``None`` before the first)."""
        return self._last

    @property
    def drift(self) -> int:
        """Time steps between the clock and the last accepted code (0 without drift
        tracking)."""
        return self._drift

    def verify(self, code: str, *, at: float | None = None) -> int:
        """Verify ``code`` at ``at`` (default: now) and remember its time step; returns it.

        Raises :class:`InvalidCode` for a wrong, expired or already used code and
        ``ValueError`` for a malformed one; the state changes only on success.
        """
        with self._lock:
            now = time.time() if at is None else at
            shifted = now + self._drift * self._totp.period
            step = self._totp.verify(
                code,
                at=shifted,
                past=self._past,
                future=self._future,
                last_counter=self._last,
            )
            self._last = step
            if self._track_drift:
                self._drift = step - self._totp.counter(now)
            return step
