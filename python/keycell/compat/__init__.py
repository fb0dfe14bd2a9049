"""Compatibility layers: keycell keys behind the APIs and token formats of other libraries.

Each module imports the library it stands in for only where it needs it (most need none at
run time): ``keycell.compat.itsdangerous`` and ``keycell.compat.django`` issue and verify
the same tokens as itsdangerous and ``django.core.signing`` with the key in guarded memory;
``keycell.compat.cryptography`` gives pyca/cryptography key objects whose operations run
in keycell (``key.to_cryptography()``), and ``keycell.compat.joserfc`` joserfc keys built
on them.
"""
