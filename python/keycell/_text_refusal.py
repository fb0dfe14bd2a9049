"""The text refusal of the Python-level handles that stand for a secret (agent keys, the
TOTP verifier), the same as the native handles' (``src/py/text_refusal.rs``): ``str()`` and
``format()`` with every spec raise ``TypeError``, so a framework that calls ``str()`` on its
"secret" fails instead of signing with the handle's public label."""

from __future__ import annotations

from typing import NoReturn

__all__ = ["RefusesText"]


def refuse_text(class_name: str) -> TypeError:
    """The ``TypeError`` for turning a handle of class ``class_name`` into text."""
    return TypeError(
        f"{class_name} cannot be converted to text: it stands for a secret, and "
        "str()/format() would give only its public label, which code expecting a secret "
        "string would sign with. Pass the handle itself to keycell (e.g. key.hmac(data), "
        "keycell's integrations); repr() gives the redacted label"
    )


class RefusesText:
    """Mixin: ``str()`` and ``format()`` raise ``TypeError``; ``repr()`` is the class's own."""

    __slots__ = ()

    def __str__(self) -> NoReturn:
        raise refuse_text(type(self).__name__)

    def __format__(self, spec: str) -> NoReturn:
        raise refuse_text(type(self).__name__)
