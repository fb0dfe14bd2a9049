//! X25519 by the Montgomery ladder vs the Edwards route that `src/crypto/x25519.rs` takes
//! for peers on the curve (birational map, `curve25519-dalek`'s variable-base
//! multiplication with its run-time-selected AVX2 backend, back to u), paired in rounds.
//!
//! Run: `cargo bench --no-default-features --bench x25519_route`.

use std::hint::black_box;
use std::time::Instant;

use curve25519_dalek::montgomery::MontgomeryPoint;

fn per_op_ns(mut f: impl FnMut(), iters: u32) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(iters)
}

fn main() {
    let k = [7u8; 32];
    let peer = MontgomeryPoint::mul_base_clamped([9u8; 32]);
    let edwards = |p: MontgomeryPoint| match p.to_edwards(0) {
        Some(e) => e.mul_clamped(k).to_montgomery(),
        None => p.mul_clamped(k),
    };
    assert_eq!(edwards(peer), peer.mul_clamped(k), "both routes agree");
    let mut ratios = Vec::new();
    let (mut ladder_ns, mut edwards_ns) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        let l = per_op_ns(
            || {
                black_box(black_box(peer).mul_clamped(k));
            },
            2000,
        );
        let e = per_op_ns(
            || {
                black_box(edwards(black_box(peer)));
            },
            2000,
        );
        ratios.push(e / l);
        ladder_ns.push(l);
        edwards_ns.push(e);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!(
        "ladder {:.1} us, edwards route {:.1} us, paired median ratio {:.3}",
        median(&mut ladder_ns) / 1e3,
        median(&mut edwards_ns) / 1e3,
        median(&mut ratios)
    );
}
