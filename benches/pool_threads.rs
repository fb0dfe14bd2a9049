//! Raw cost of a pooled slot, without Python or the GIL: allocate + free of a 32-byte
//! region, single-threaded and from 1, 2 and 4 threads at once (ops/s in total), to show
//! whether the shard mutexes convoy. Page isolation for comparison.
//!
//! Run: `cargo bench --no-default-features --bench pool_threads`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use _native::memory::guarded::GuardedRegion;
use _native::memory::pool::PoolRegion;

fn ops_per_sec(threads: usize, run: Duration, alloc: fn()) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let mut n = 0u64;
                while start.elapsed() < run {
                    for _ in 0..256 {
                        alloc();
                    }
                    n += 256;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    total as f64 / start.elapsed().as_secs_f64()
}

fn pooled() {
    let r = PoolRegion::new_with(&[32], &mut |p| p[0].fill(7));
    black_box(&r);
}

fn paged() {
    let r = GuardedRegion::new(32);
    black_box(&r);
}

fn main() {
    let run = Duration::from_millis(700);
    for threads in [1, 2, 4] {
        println!(
            "pool  {threads} thread(s): {:>12.0} alloc+free/s",
            ops_per_sec(threads, run, pooled)
        );
    }
    println!(
        "page  1 thread(s): {:>12.0} alloc+free/s",
        ops_per_sec(1, run, paged)
    );
}
