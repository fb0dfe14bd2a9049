//! Raw cost of guarded memory, without Python: one guarded mapping allocated and freed
//! (mmap, mprotect, madvise x2, mlock, canary, mprotect; then canary check, wipe, munlock,
//! munmap), and a 32-byte SymmetricKey (the same plus CSPRNG fill and HMAC pads).
//!
//! Run: `cargo bench --no-default-features --bench guarded_region`.

use std::hint::black_box;
use std::time::Instant;

use _native::crypto::symmetric::SymmetricKey;
use _native::memory::guarded::GuardedRegion;

fn median_ns(mut f: impl FnMut(), iters: u32, rounds: usize) -> f64 {
    let mut per = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        per.push(t.elapsed().as_nanos() as f64 / f64::from(iters));
    }
    per.sort_by(|a, b| a.total_cmp(b));
    per[rounds / 2]
}

fn main() {
    let region = median_ns(
        || {
            let r = GuardedRegion::new(32);
            black_box(&r);
            drop(r);
        },
        2000,
        15,
    );
    let key = median_ns(
        || {
            let k = SymmetricKey::generate(32);
            black_box(&k);
            drop(k);
        },
        2000,
        15,
    );
    println!(
        "guarded mapping (32 B) alloc + free: {:.2} µs",
        region / 1000.0
    );
    println!(
        "SymmetricKey::generate(32) + drop:   {:.2} µs",
        key / 1000.0
    );
}
