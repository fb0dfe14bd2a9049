"""The ``hsm`` fixture (pkcs11_support.py): a throwaway SoftHSM2 token directory."""

from pkcs11_support import hsm

__all__ = ["hsm"]
