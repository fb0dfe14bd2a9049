"""A key store's master key kept in the session keyring: a service unlocks its store once
per session without a key file or passphrase, and the master never enters Python."""

from __future__ import annotations

from pathlib import Path

from keyring_session import in_session, requires_keyring

pytestmark = requires_keyring


def test_store_master_from_the_session_keyring(tmp_path: Path) -> None:
    r = in_session(
        """
        from keycell import KeyStore
        path = sys.argv[1]
        master = SecretKey.generate(32)
        with KeyStore.create(path, master=master) as store:
            store.put("api", SecretKey.generate(32))
        keyring.store(master, "kc:store-master", timeout=3600)
        master.destroy()
        # Later, in any process of the same session:
        with KeyStore.open(path, master=SecretKey.from_keyring("kc:store-master")) as store:
            names = store.names()
        done({"names": names})
        """,
        str(tmp_path / "keys.kcs"),
    )
    assert r["names"] == ["api"]
