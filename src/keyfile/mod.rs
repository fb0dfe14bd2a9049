//! Key files: what a file holds and how it is encoded ([`format`], [`detect`]), reading
//! into guarded memory ([`load`]) and encoding ([`encode`]). Opening files safely and
//! writing them atomically is `crate::fs`. RSA private keys (PKCS#1 and PKCS#8, PEM and
//! DER) are read and written by [`rsa`] through the same file checks and scratch regions.
//! Formats: `docs/key-formats.md`.

mod detect;
mod encode;
mod format;
mod load;
pub mod openssh;
mod rsa;
pub mod ssh_public;

pub use encode::{with_encoded, write_key_file, write_key_file_with};
pub use format::{max_file_len, Format, MAX_KEY_FILE_LEN, MAX_PRIVATE_KEY_FILE_LEN};
pub use load::{read_passphrase_file, DecodedKeyFile, LoadError, MAX_PASSPHRASE_FILE_LEN};
pub use rsa::{load_rsa_private_key, openssh_key_type, rsa_from_scratch, write_rsa_private_key};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::key_kind::KeyKind;
    use crate::test_dir::write_file as write;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn load(
        path: &Path,
        kind: KeyKind,
        f: Option<Format>,
        l: Option<usize>,
    ) -> Result<Vec<u8>, String> {
        let d = DecodedKeyFile::load(path, kind, f, l).map_err(|e| format!("{e:?}"))?;
        let mut out = vec![0u8; d.key_len()];
        d.decode_into(&mut out).map_err(|e| format!("{e:?}"))?;
        Ok(out)
    }

    #[test]
    fn formats_detect_and_round_trip() {
        let d = crate::test_dir::fresh("keyfile-test");
        let key: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ 0x80).collect();
        // EC and RSA keys: their own tests (a scalar must be below the group order; an
        // RSA key is PKCS#1 DER).
        for kind in KeyKind::ALL
            .into_iter()
            .filter(|k| k.ec_curve().is_none() && *k != KeyKind::Rsa)
        {
            for f in [
                Format::Raw,
                Format::Hex,
                Format::Base64,
                Format::Pem,
                Format::Der,
            ] {
                let p = d.join(format!("{}-{}", kind.name(), f.name()));
                let r = write_key_file(&p, kind, f, &key, false);
                if !f.allowed_for(kind) {
                    assert!(r.is_err());
                    continue;
                }
                r.expect("write");
                let mode = std::fs::metadata(&p).expect("meta").permissions().mode() & 0o777;
                assert_eq!(mode, 0o600);
                // Given format, detected with the length, detected without (secret only).
                assert_eq!(load(&p, kind, Some(f), None).expect("given"), key);
                assert_eq!(load(&p, kind, None, Some(32)).expect("len"), key);
                assert_eq!(load(&p, kind, None, None).expect("auto"), key);
                // No overwrite; overwrite replaces.
                assert!(write_key_file(&p, kind, f, &key, false).is_err());
                write_key_file(&p, kind, f, &key, true).expect("overwrite");
            }
        }
        // No temporary files left behind.
        let left: Vec<_> = std::fs::read_dir(&d)
            .expect("ls")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty());
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn ambiguity_and_wrong_kinds_are_refused() {
        let d = crate::test_dir::fresh("keyfile-test");
        let p = d.join("k");
        // One printable token (no padding, no line break) is raw.
        write(&p, b"0123456789abcdeg", 0o600);
        assert_eq!(
            load(&p, KeyKind::Secret, None, None).expect("raw"),
            b"0123456789abcdeg"
        );
        assert_eq!(
            load(&p, KeyKind::Secret, Some(Format::Raw), None).expect("raw"),
            b"0123456789abcdeg"
        );
        assert_eq!(
            load(&p, KeyKind::Secret, None, Some(16)).expect("len"),
            b"0123456789abcdeg"
        );
        // Short text that is both hex and base64 (both readings under 16 bytes): refused as
        // ambiguous unless told by format= or length= (detect.rs `AMBIGUOUS_BELOW`).
        write(&p, b"0123456789abcdef\n", 0o600);
        let e = load(&p, KeyKind::Secret, None, None).expect_err("ambiguous");
        assert!(e.contains("ambiguous"), "{e}");
        assert_eq!(
            load(&p, KeyKind::Secret, None, Some(8)).expect("hex").len(),
            8
        );
        assert_eq!(
            load(&p, KeyKind::Secret, None, Some(12))
                .expect("b64")
                .len(),
            12
        );
        assert_eq!(
            load(&p, KeyKind::Secret, Some(Format::Hex), None)
                .expect("hex")
                .len(),
            8
        );
        // Text with a line break that is neither hex nor base64 is refused.
        write(&p, b"correct horse battery staple\n", 0o600);
        assert!(load(&p, KeyKind::Secret, None, None).is_err());
        // Wrong expected length.
        assert!(load(&p, KeyKind::Secret, None, Some(9)).is_err());
        assert!(load(&p, KeyKind::Secret, Some(Format::Hex), Some(9)).is_err());
        // PEM for a secret key; an Ed25519 PEM read as X25519.
        let key = [7u8; 32];
        let pem = d.join("pem");
        write_key_file(&pem, KeyKind::Ed25519, Format::Pem, &key, false).expect("pem");
        assert!(load(&pem, KeyKind::Secret, None, None).is_err());
        let e = load(&pem, KeyKind::X25519, None, None).expect_err("kind");
        assert!(e.contains("Ed25519 key, not an X25519"), "{e}");
        // Non-canonical or broken encodings.
        write(&p, b"zz\n", 0o600);
        assert!(load(&p, KeyKind::Secret, Some(Format::Hex), None).is_err());
        write(
            &p,
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
            0o600,
        );
        let e = load(&p, KeyKind::Ed25519, None, None).expect_err("encrypted");
        assert!(e.contains("encrypted"), "{e}");
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn openssl_style_pkcs8_loads() {
        // `openssl genpkey -algorithm ed25519` (RFC 8410 §10.3 example key).
        let d = crate::test_dir::fresh("keyfile-test");
        let p = d.join("ed.pem");
        write(
            &p,
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n",
            0o600,
        );
        let k = load(&p, KeyKind::Ed25519, None, None).expect("pem");
        assert_eq!(
            k,
            [
                0xd4, 0xee, 0x72, 0xdb, 0xf9, 0x13, 0x58, 0x4a, 0xd5, 0xb6, 0xd8, 0xf1, 0xf7, 0x69,
                0xf8, 0xad, 0x3a, 0xfe, 0x7c, 0x28, 0xcb, 0xf1, 0xd4, 0xfb, 0xe0, 0x97, 0xa8, 0x8f,
                0x44, 0x75, 0x58, 0x42
            ]
        );
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn pkcs8_v2_public_key_and_truncations() {
        let d = crate::test_dir::fresh("keyfile-test");
        let p = d.join("k");
        let key = [0x5au8; 32];
        // Version 2 (RFC 5958) with a public key: the key loads, the public key is handed
        // to the caller for its check.
        let mut v2 = vec![0x30, 0x51, 0x02, 0x01, 0x01];
        v2.extend_from_slice(&[
            0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
        ]);
        v2.extend_from_slice(&key);
        v2.extend_from_slice(&[0x81, 0x21, 0x00]);
        v2.extend_from_slice(&[7u8; 32]);
        write(&p, &v2, 0o600);
        let f = DecodedKeyFile::load(&p, KeyKind::Ed25519, None, None).expect("v2");
        assert_eq!(
            (f.format(), f.public()),
            (Format::Der, Some(&[7u8; 32][..]))
        );
        assert_eq!(load(&p, KeyKind::Ed25519, None, None).expect("v2"), key);
        // Every truncation of a DER or PEM file is refused, never read as another key
        // (a PEM file only loses its optional final newline).
        for f in [Format::Der, Format::Pem] {
            let full = d.join(format!("full-{}", f.name()));
            write_key_file(&full, KeyKind::X25519, f, &key, false).expect("write");
            let data = std::fs::read(&full).expect("read");
            for n in 1..data.len() {
                write(&p, &data[..n], 0o600);
                let r = load(&p, KeyKind::X25519, None, None);
                if f == Format::Pem && n == data.len() - 1 {
                    assert_eq!(r.expect("no final newline"), key);
                } else {
                    assert!(r.is_err(), "{} truncated to {n} loaded", f.name());
                }
            }
        }
        // Hex and base64 of a 32-byte key are detected; other lengths are refused.
        for (f, text) in [
            (Format::Hex, b"5a".repeat(32)),
            (
                Format::Base64,
                b"WlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlpaWlo=".to_vec(),
            ),
        ] {
            write(&p, &[text.as_slice(), b"\n"].concat(), 0o600);
            let loaded = DecodedKeyFile::load(&p, KeyKind::Ed25519, None, None).expect("text");
            assert_eq!(loaded.format(), f);
            assert_eq!(load(&p, KeyKind::Ed25519, None, None).expect("text"), key);
        }
        write(&p, &b"5a".repeat(31), 0o600);
        let e = load(&p, KeyKind::Ed25519, None, None).expect_err("short hex");
        assert!(e.contains("not a raw 32-byte Ed25519 key"), "{e}");
        // A format that does not match the contents is refused.
        write_key_file(&p, KeyKind::Ed25519, Format::Pem, &key, true).expect("pem");
        for f in [Format::Der, Format::Raw, Format::Hex, Format::Base64] {
            assert!(
                load(&p, KeyKind::Ed25519, Some(f), None).is_err(),
                "{}",
                f.name()
            );
        }
        std::fs::remove_dir_all(&d).expect("cleanup");
    }

    #[test]
    fn ec_keys_write_detect_and_load() {
        use crate::crypto::ec::{self, Curve};
        let d = crate::test_dir::fresh("keyfile-test");
        for curve in Curve::ALL {
            let key = ec::PrivateKey::generate(curve).expect("key");
            let scalar = key.private_bytes().expect("scalar").to_vec();
            let kind = KeyKind::from_ec_curve(curve);
            for f in [Format::Pem, Format::Der] {
                let p = d.join(format!("{}-{}", kind.name(), f.name()));
                write_key_file(&p, kind, f, &scalar, false).expect("write");
                for want in [None, Some(curve)] {
                    let file = DecodedKeyFile::load_ec(&p, want, None, None).expect("load");
                    assert_eq!((file.format(), file.ec_curve()), (f, Some(curve)));
                    assert_eq!(file.public(), Some(key.public().uncompressed()));
                    let mut out = vec![0u8; file.key_len()];
                    file.decode_into(&mut out).expect("decode");
                    assert_eq!(out, scalar);
                }
                let other = if curve == Curve::P256 {
                    Curve::P384
                } else {
                    Curve::P256
                };
                let e = DecodedKeyFile::load_ec(&p, Some(other), None, None)
                    .map(|_| ())
                    .expect_err("wrong curve");
                assert!(format!("{e:?}").contains("not a"), "{e:?}");
                // Raw, hex and base64 name no curve: refused for EC keys.
                for text in [Format::Raw, Format::Hex, Format::Base64] {
                    assert!(DecodedKeyFile::load_ec(&p, None, Some(text), None).is_err());
                }
            }
        }
        // `openssl ecparam -name prime256v1 -genkey`: an EC PARAMETERS block, then SEC1.
        let p = d.join("sec1.pem");
        write(
            &p,
            b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n\
              -----BEGIN EC PRIVATE KEY-----\n\
              MHcCAQEEIMmvqdhFunUWa1whV2ex1pNOUMPbNuibEnuKYisSD2choAoGCCqGSM49\n\
              AwEHoUQDQgAEYP7UuiVanTHJYet0xjVtaMBJuJI7Yfps5mliLmDyn7Z5A/4QCLi8\n\
              maQa6elWKLxk8vGyDC1+n1F3o8KU1EYimQ==\n-----END EC PRIVATE KEY-----\n",
            0o600,
        );
        let file = DecodedKeyFile::load_ec(&p, None, None, None).expect("sec1");
        assert_eq!(file.ec_curve(), Some(Curve::P256));
        let mut out = [0u8; 32];
        file.decode_into(&mut out).expect("decode");
        assert_eq!(
            out.to_vec(),
            crate::crypto::unhex(
                "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721"
            )
        );
        // An Ed25519 PKCS#8 file is not an EC key, and EC files are not Ed25519 keys.
        let ed = d.join("ed.pem");
        write_key_file(&ed, KeyKind::Ed25519, Format::Pem, &[7u8; 32], false).expect("ed");
        assert!(DecodedKeyFile::load_ec(&ed, None, None, None).is_err());
        assert!(DecodedKeyFile::load(&p, KeyKind::Ed25519, None, None).is_err());
        std::fs::remove_dir_all(&d).expect("cleanup");
    }
}
