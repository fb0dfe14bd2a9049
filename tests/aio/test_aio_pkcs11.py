"""``keycell.aio.run`` with a PKCS#11 token: opening, key generation and signing run in
worker threads, concurrently, and give the same results as on the caller's thread."""

from __future__ import annotations

import asyncio

from keycell import aio, pkcs11
from pkcs11_support import Hsm


def test_token_calls_off_the_loop(hsm: Hsm) -> None:
    async def main() -> None:
        token = await aio.run(
            pkcs11.Token.open, module=hsm.module, token_label=hsm.label, pin=hsm.pin_buf()
        )
        with token:
            key = await aio.run(token.generate_ed25519, label="kc-aio")
            mac = await aio.run(token.generate_secret, "kc-aio-mac", 32)
            msgs = [b"message %d" % i for i in range(16)]
            sigs = await asyncio.gather(*(aio.run(key.sign, m) for m in msgs))
            tags = await asyncio.gather(*(aio.run(mac.hmac, m) for m in msgs))
            for m, sig, tag in zip(msgs, sigs, tags, strict=True):
                key.public_key().verify(sig, m)
                assert tag == mac.hmac(m)

    asyncio.run(main())
