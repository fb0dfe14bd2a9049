//! XChaCha20-Poly1305 at the key store's entry sizes (a key of 1 B to 64 KiB; most are 32
//! bytes), seal + open of one entry, paired in rounds: keycell's one route as called
//! (`crypto/aead_suite.rs`: HChaCha20 + `ring`'s ChaCha20-Poly1305, outlined, stack
//! scrubbed), and bare, the two routes keycell had: RustCrypto's
//! `chacha20poly1305::XChaCha20Poly1305` (the key store's cipher until both used
//! `aead_suite`) and HChaCha20 (RustCrypto `chacha20`) + `ring`.
//!
//! Run: `cargo bench --no-default-features --bench xchacha_route`.

// A benchmark: a failed call is a broken run, and stops it.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use _native::crypto::aead_suite::{self, AeadAlgorithm};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};

fn per_op_ns(mut f: impl FnMut(), iters: u32) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(iters)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Seal and open with RustCrypto's `XChaCha20Poly1305`, no scrub.
fn rustcrypto_bare(key: &[u8; 32], nonce: &[u8; 24], aad: &[u8], buf: &mut [u8]) {
    let c = chacha20poly1305::XChaCha20Poly1305::new(key.into());
    let tag = c
        .encrypt_in_place_detached(nonce.into(), aad, buf)
        .expect("seal");
    c.decrypt_in_place_detached(nonce.into(), aad, buf, &tag)
        .expect("open");
}

/// Seal and open with HChaCha20 + `ring`'s ChaCha20-Poly1305, no scrub.
fn ring_bare(key: &[u8; 32], nonce: &[u8; 24], aad: &[u8], buf: &mut [u8]) {
    use chacha20poly1305::aead::consts::U10;
    use ring::aead as r;
    let subkey = chacha20::hchacha::<U10>(key.into(), nonce[..16].into());
    let k = r::LessSafeKey::new(r::UnboundKey::new(&r::CHACHA20_POLY1305, &subkey).expect("k"));
    let mut n12 = [0u8; 12];
    n12[4..].copy_from_slice(&nonce[16..]);
    let n = || r::Nonce::assume_unique_for_key(n12);
    let tag = k
        .seal_in_place_separate_tag(n(), r::Aad::from(aad), buf)
        .expect("seal");
    k.open_in_place_separate_tag(n(), r::Aad::from(aad), tag, buf, 0..)
        .expect("open");
}

fn main() {
    let key = [7u8; 32];
    let nonce = [9u8; 24];
    let aad = [1u8; 60]; // store id, name and kind: a few dozen bytes
    let alg = AeadAlgorithm::XChaCha20Poly1305;
    println!(
        "entry bytes | as called: aead_suite | bare: RustCrypto, HChaCha20+ring \
         (ns per seal+open, medians of 15 rounds)"
    );
    for size in [32usize, 64, 256, 1024, 4096, 16384, 65536] {
        let iters = (2_000_000 / (size as u32 + 500)).max(20);
        let mut buf = vec![0x5au8; size];
        let (mut b, mut c, mut d) = (vec![], vec![], vec![]);
        for _ in 0..15 {
            b.push(per_op_ns(
                || {
                    let t = aead_suite::seal(alg, &key, &nonce, &aad, &mut buf).expect("seal");
                    aead_suite::open(alg, &key, &nonce, &aad, &mut buf, &t).expect("open");
                    black_box(&buf);
                },
                iters,
            ));
            c.push(per_op_ns(
                || rustcrypto_bare(black_box(&key), &nonce, &aad, black_box(&mut buf)),
                iters,
            ));
            d.push(per_op_ns(
                || ring_bare(black_box(&key), &nonce, &aad, black_box(&mut buf)),
                iters,
            ));
        }
        println!(
            "{size:>6} | {:>9.0} | {:>9.0} {:>9.0}",
            median(&mut b),
            median(&mut c),
            median(&mut d)
        );
    }
}
