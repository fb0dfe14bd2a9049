//! The three ways `src/crypto/x25519.rs` can compute X25519, paired in rounds: the
//! BMI2 kernel (`src/kernels/x25519.rs`, taken where the CPU has BMI2), and the two
//! `curve25519-dalek` routes of the fallback: the Montgomery ladder and the Edwards route
//! (birational map, dalek's variable-base multiplication with its run-time-selected AVX2
//! backend, back to u) that the fallback takes for peers on the curve.
//!
//! Run: `cargo bench --no-default-features --bench x25519_route`.

use std::hint::black_box;
use std::time::Instant;

use _native::kernels::x25519 as kernel;
use curve25519_dalek::montgomery::MontgomeryPoint;

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

fn main() {
    let k = [7u8; 32];
    let peer = MontgomeryPoint::mul_base_clamped([9u8; 32]);
    let edwards = |p: MontgomeryPoint| match p.to_edwards(0) {
        Some(e) => e.mul_clamped(k).to_montgomery(),
        None => p.mul_clamped(k),
    };
    let kernel_op = |p: &[u8; 32]| {
        let mut out = [0u8; 32];
        assert!(kernel::x25519(&k, p, &mut out), "this CPU has no BMI2");
        out
    };
    assert_eq!(
        edwards(peer),
        peer.mul_clamped(k),
        "both dalek routes agree"
    );
    assert_eq!(
        kernel_op(&peer.0),
        peer.mul_clamped(k).0,
        "the kernel agrees"
    );
    let (mut ladder_ns, mut edwards_ns, mut kernel_ns) = (Vec::new(), Vec::new(), Vec::new());
    let (mut edwards_ratio, mut kernel_ratio) = (Vec::new(), Vec::new());
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
        let n = per_op_ns(
            || {
                black_box(kernel_op(black_box(&peer.0)));
            },
            2000,
        );
        edwards_ratio.push(e / l);
        kernel_ratio.push(n / e);
        ladder_ns.push(l);
        edwards_ns.push(e);
        kernel_ns.push(n);
    }
    println!(
        "dalek ladder {:.1} us, dalek edwards route {:.1} us (paired ratio to the ladder {:.3}), \
         bmi2 kernel {:.1} us (paired ratio to the edwards route {:.3})",
        median(&mut ladder_ns) / 1e3,
        median(&mut edwards_ns) / 1e3,
        median(&mut edwards_ratio),
        median(&mut kernel_ns) / 1e3,
        median(&mut kernel_ratio),
    );
}
