"""Ed25519 test vectors: every case of Wycheproof ``ed25519_test.json``, and RFC 8032 §7.1.

Wycheproof (verify only; the file has no private keys):

- ``valid``: ``Ed25519PublicKey.verify`` accepts, and so does ``ed25519_verify_batch`` with
  the case as a one-item batch.
- ``invalid``: both raise ``InvalidSignature`` (wrong lengths, ``S >= L``, non-canonical or
  otherwise invalid ``R``/``S`` encodings, edge-case values).
- ``acceptable``: the file has none (pinned down by ``test_file_inventory``).

Every group public key loads with ``from_public_bytes``, and the group's DER and PEM
encodings load to the same key.

RFC 8032 §7.1: TEST 1, 2, 3, 1024 and SHA(abc) sign to exactly the published signatures
(signing is deterministic), and the published public keys are derived from the seeds.
"""

from __future__ import annotations

import pytest
from keycell import Ed25519PrivateKey, Ed25519PublicKey, InvalidSignature, ed25519_verify_batch
from vectors import WycheproofCase, load_wycheproof, result_counts, wycheproof_params

FILE = "ed25519_test.json"


def test_file_inventory() -> None:
    assert result_counts(FILE) == {"valid": 88, "invalid": 63}
    assert all(c.algorithm == "EDDSA" for c in load_wycheproof(FILE))


@pytest.mark.parametrize("case", wycheproof_params(FILE))
def test_ed25519_vector(case: WycheproofCase) -> None:
    raw = bytes.fromhex(case.group["publicKey"]["pk"])
    public = Ed25519PublicKey.from_public_bytes(raw)
    assert public.public_bytes_raw() == raw
    assert Ed25519PublicKey.from_der(bytes.fromhex(case.group["publicKeyDer"])) == public
    assert Ed25519PublicKey.from_pem(case.group["publicKeyPem"]) == public

    msg, sig = case.hex("msg"), case.hex("sig")
    if case.result == "valid":
        public.verify(sig, msg)
        public.verify(bytearray(sig), memoryview(msg))
        ed25519_verify_batch([(public, sig, msg)])
    else:
        assert case.result == "invalid"
        with pytest.raises(InvalidSignature):
            public.verify(sig, msg)
        with pytest.raises(InvalidSignature):
            ed25519_verify_batch([(public, sig, msg)])


def test_whole_file_as_batches() -> None:
    """All valid cases verify as one batch; adding any one invalid case fails it."""
    cases = load_wycheproof(FILE)

    def item(c: WycheproofCase) -> tuple[Ed25519PublicKey, bytes, bytes]:
        pk = Ed25519PublicKey.from_public_bytes(bytes.fromhex(c.group["publicKey"]["pk"]))
        return (pk, c.hex("sig"), c.hex("msg"))

    valid = [item(c) for c in cases if c.result == "valid"]
    ed25519_verify_batch(valid)
    for c in cases:
        if c.result == "invalid":
            with pytest.raises(InvalidSignature, match=f"item {len(valid) // 2} "):
                ed25519_verify_batch(
                    [*valid[: len(valid) // 2], item(c), *valid[len(valid) // 2 :]]
                )


# RFC 8032 §7.1 (seed, public key, message, signature).
RFC8032 = {
    "TEST 1": (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    "TEST 2": (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    "TEST 3": (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    "TEST 1024": (
        "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
        "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
        "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f54e9f77b1"
        "e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d"
        "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efcb8550ee3a5e1998bd177e93a"
        "7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e"
        "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbefefd75499da96bd68a8a97b928a8bbc10"
        "3b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1"
        "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d"
        "502f1a8c6eb6f1ce22b3de1a1f40cc24554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270"
        "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089b"
        "eccf80cfe2df16a2cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba"
        "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae0784504df543af8969b"
        "e3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7"
        "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb038dda0847dd988d"
        "cda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df"
        "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08d78ff4ef5d63653a65040cf9bfd4aca7"
        "984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4"
        "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac09"
        "43bf6686b64b2579376504ccc493d97e6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f"
        "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f161"
        "0e4eafe595f6d9d90d11faa933a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d"
        "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8ca"
        "c60c905c15fc910840b94c00a0b9d0",
        "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03",
    ),
    "TEST SHA(abc)": (
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704",
    ),
}


@pytest.mark.parametrize("name", list(RFC8032))
def test_rfc8032_sign(name: str) -> None:
    seed, public, msg, sig = (bytes.fromhex(x) for x in RFC8032[name])
    if name == "TEST 1024":
        assert len(msg) == 1023
    with Ed25519PrivateKey.from_private_bytes(bytearray(seed)) as key:
        pk = key.public_key()
        assert pk.public_bytes_raw() == public
        assert key.sign(msg) == sig
        assert key.sign(msg) == sig  # deterministic, region unchanged by signing
        pk.verify(sig, msg)
        ed25519_verify_batch([(pk, sig, msg)])
        tampered = bytearray(sig)
        tampered[5] ^= 0x40
        with pytest.raises(InvalidSignature):
            pk.verify(tampered, msg)
        with pytest.raises(InvalidSignature):
            pk.verify(sig, msg + b"\x00")
