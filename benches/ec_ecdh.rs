//! ECDH P-256 with a stored key: ring's ECDH alone (the scalar handed to
//! `EphemeralPrivateKey::generate` as `src/crypto/ec.rs` does, `agree_ephemeral` with the
//! peer's point) against keycell's whole `ec::PrivateKey::exchange` (the same, plus the
//! stack scrub, the guarded `SymmetricKey` the secret is written into and its
//! destruction), and against the `p256` crate's multiplication (`d · P`, affine x), the
//! alternative; paired in rounds. `ring / keycell` is the crate's share of keycell's ECDH
//! time.
//!
//! Run: `cargo bench --no-default-features --bench ec_ecdh`.

#![allow(clippy::expect_used)]
#![allow(deprecated)] // ring::test::rand::FixedSliceRandom, as in src/crypto/ec.rs

use std::hint::black_box;
use std::time::Instant;

use _native::crypto::ec::{Curve, PrivateKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{NonZeroScalar, ProjectivePoint, PublicKey};
use ring::agreement::{agree_ephemeral, EphemeralPrivateKey, UnparsedPublicKey, ECDH_P256};

fn per_op_ns(mut f: impl FnMut(), iters: u32) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(iters)
}

fn main() {
    let key = PrivateKey::generate(Curve::P256).expect("key");
    let peer = PrivateKey::generate(Curve::P256).expect("peer");
    let peer_public = *peer.public();
    let d = key.private_bytes().expect("scalar");
    let ring_only = || {
        let fixed = ring::test::rand::FixedSliceRandom { bytes: d };
        let k = EphemeralPrivateKey::generate(&ECDH_P256, &fixed).expect("ring key");
        let peer = UnparsedPublicKey::new(&ECDH_P256, peer_public.uncompressed());
        agree_ephemeral(k, &peer, |s| {
            black_box(s);
        })
        .expect("agree");
    };
    let scalar = Option::<NonZeroScalar>::from(NonZeroScalar::from_repr(
        p256::FieldBytes::clone_from_slice(d),
    ))
    .expect("scalar");
    let point = PublicKey::from_sec1_bytes(peer_public.uncompressed()).expect("point");
    let p256_only = || {
        let shared = (ProjectivePoint::from(*point.as_affine()) * *scalar).to_affine();
        black_box(shared.to_encoded_point(false));
    };
    let whole = || {
        let shared = key.exchange(black_box(&peer_public)).expect("exchange");
        black_box(&shared);
    };
    let (mut ring_ns, mut p256_ns, mut whole_ns) = (Vec::new(), Vec::new(), Vec::new());
    let mut share = Vec::new();
    for _ in 0..15 {
        let r = per_op_ns(ring_only, 300);
        let p = per_op_ns(p256_only, 300);
        let w = per_op_ns(whole, 300);
        ring_ns.push(r);
        p256_ns.push(p);
        whole_ns.push(w);
        share.push(r / w);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!(
        "ring ECDH {:.1} us, keycell exchange {:.1} us, ring's share (paired median) {:.3}; \
         p256 crate d*P {:.1} us",
        median(&mut ring_ns) / 1e3,
        median(&mut whole_ns) / 1e3,
        median(&mut share),
        median(&mut p256_ns) / 1e3,
    );
}
