//! ECDH P-256 with a stored key: the `p256` crate's multiplication alone (peer point
//! decoded once, `d · P`, affine x) against keycell's whole `ec::PrivateKey::exchange`
//! (point re-check, the multiplication, the stack scrub, the guarded `SymmetricKey` the
//! secret is written into and its destruction), paired in rounds. The ratio is the
//! crate's share of keycell's ECDH time.
//!
//! Run: `cargo bench --no-default-features --bench ec_ecdh`.

#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use _native::crypto::ec::{Curve, PrivateKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{NonZeroScalar, ProjectivePoint, PublicKey};

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
    let scalar = Option::<NonZeroScalar>::from(NonZeroScalar::from_repr(
        p256::FieldBytes::clone_from_slice(d),
    ))
    .expect("scalar");
    let point = PublicKey::from_sec1_bytes(peer_public.uncompressed()).expect("point");
    let crate_only = || {
        let shared = (ProjectivePoint::from(*point.as_affine()) * *scalar).to_affine();
        black_box(shared.to_encoded_point(false));
    };
    let whole = || {
        let shared = key.exchange(black_box(&peer_public)).expect("exchange");
        black_box(&shared);
    };
    let (mut crate_ns, mut whole_ns, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..15 {
        let c = per_op_ns(crate_only, 300);
        let w = per_op_ns(whole, 300);
        crate_ns.push(c);
        whole_ns.push(w);
        ratios.push(c / w);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!(
        "p256 crate d*P {:.1} us, keycell exchange {:.1} us, crate share (paired median) {:.3}",
        median(&mut crate_ns) / 1e3,
        median(&mut whole_ns) / 1e3,
        median(&mut ratios)
    );
}
