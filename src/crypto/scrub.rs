//! Wiping the stack that a curve operation used.
//!
//! The Ed25519 and X25519 arithmetic of `curve25519-dalek` keeps secret-derived
//! temporaries on the stack (the signed radix-16 digits of the nonce, the unpacked limbs of
//! the scalar, ladder and table-lookup temporaries) and does not zeroize them. Our own
//! code zeroizes what it owns, but those frames belong to the library.
//!
//! The remedy: every operation on secret material runs in a function marked
//! `#[inline(never)]`, called directly from a wrapper that, right after it returns, calls
//! [`scrub_stack`]. `scrub_stack`'s frame starts at the same stack pointer the operation's
//! frames started at, and it overwrites [`SCRUB_BYTES`] bytes below it with volatile
//! writes, so everything the operation left behind is overwritten before the wrapper
//! returns. A Rust test (`stack_depth_is_covered` in `ed25519.rs`) measures how deep the
//! operations really reach and fails if they ever outgrow the scrubbed depth.
//!
//! This is the technique of `clear_on_drop::clear_stack_on_return`, in safe code.

/// Bytes of stack overwritten after each secret operation. Measured (tests
/// `*_stack_depth_is_covered` in `ed25519.rs` and `x25519.rs`, x86-64, AVX2 backend): in
/// release builds signing reaches about 2.8 KiB below its caller, key creation and
/// exchange about 2.5 KiB; unoptimized test builds need up to about 21 KiB.
#[cfg(not(debug_assertions))]
pub const SCRUB_BYTES: usize = 8 * 1024;
/// Bytes of stack overwritten after each secret operation (unoptimized build).
#[cfg(debug_assertions)]
pub const SCRUB_BYTES: usize = 48 * 1024;

/// Bytes of stack overwritten by [`scrubbed_deep`], for operations that reach deeper than
/// the curve operations' [`SCRUB_BYTES`]: an X25519 exchange on the Edwards route
/// (`x25519.rs`; the AVX2 backend's table of eight vectorised points, about 11.3 KiB in
/// release builds) and the RustCrypto AEADs (7.2 to 8.8 KiB; test
/// `stack_depth_is_covered_and_nothing_is_left` in `aead_suite.rs`). Separate from
/// [`SCRUB_BYTES`] so that signing does not pay for it.
#[cfg(not(debug_assertions))]
pub const SCRUB_DEEP_BYTES: usize = 16 * 1024;
/// Bytes of stack overwritten by [`scrubbed_deep`] (unoptimized build).
#[cfg(debug_assertions)]
pub const SCRUB_DEEP_BYTES: usize = 96 * 1024;

/// Overwrite [`SCRUB_BYTES`] of stack below the caller's frame with zeros.
#[inline(never)]
pub fn scrub_stack() {
    scrub_words::<{ SCRUB_BYTES / 8 }>();
}

/// Overwrite `WORDS` words of stack below the caller's frame with zeros: a plain `memset`
/// (fast, vectorised) that `black_box` keeps the compiler from removing, since it must
/// assume the zeroed area is read afterwards.
#[inline(never)]
pub(crate) fn scrub_words<const WORDS: usize>() {
    let mut area = [0u64; WORDS];
    std::hint::black_box(&mut area);
    area.fill(0);
    std::hint::black_box(&area);
    // And the vector registers, which code that runs later may store to the stack whole
    // (`memory::clear_vector_registers`).
    crate::memory::clear_vector_registers();
}

/// Run `f`, then scrub the stack it used. `f` must not be inlined into the caller (pass a
/// function item marked `#[inline(never)]`, or a closure that only calls one), so that its
/// frames lie below the caller's frame, where [`scrub_stack`] will write.
#[inline(always)]
pub fn scrubbed<T>(f: impl FnOnce() -> T) -> T {
    let out = run_outlined(f);
    scrub_stack();
    out
}

/// [`scrubbed`] with [`SCRUB_DEEP_BYTES`], for operations that reach deeper.
#[inline(always)]
pub fn scrubbed_deep<T>(f: impl FnOnce() -> T) -> T {
    let out = run_outlined(f);
    scrub_words::<{ SCRUB_DEEP_BYTES / 8 }>();
    out
}

/// Run `f` in a call of its own (never inlined), so that its frames lie below the caller's.
#[inline(never)]
pub(crate) fn run_outlined<T>(f: impl FnOnce() -> T) -> T {
    f()
}

/// Test support: measure how deep an operation reaches into the stack and what it leaves
/// there, by painting the stack, running the operation, and reading the thread's own
/// stack back through `/proc/self/mem` (a file read: no `unsafe`).
#[cfg(test)]
pub(crate) mod probe {
    pub(crate) use super::SCRUB_BYTES;

    const PAINT_WORDS: usize = 16 * 1024; // 128 KiB
    const PAINT: u64 = 0xa55a_c33c_5aa5_3cc3;

    #[inline(never)]
    fn paint_stack() {
        let mut area = [PAINT; PAINT_WORDS];
        std::hint::black_box(&mut area);
    }

    #[inline(never)]
    fn stack_pointer() -> usize {
        let marker = 0u8;
        // Rounded down to the 8-byte alignment of the painted words.
        (std::hint::black_box(&marker) as *const u8 as usize) & !7
    }

    /// The bytes below `top` (a little less than was painted, so the bottom of the range
    /// is always painted).
    fn read_stack(top: usize) -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let len = PAINT_WORDS * 8 - 4096;
        let mut out = vec![0u8; len];
        let f = std::fs::File::open("/proc/self/mem").expect("open /proc/self/mem");
        f.read_exact_at(&mut out, (top - len) as u64)
            .expect("read stack");
        out
    }

    /// Run `op` on a fresh thread; return how many bytes below the caller's frame the
    /// stack was written (including the probe's own small overhead), and the stack area.
    pub(crate) fn stack_after(op: impl FnOnce() + Send) -> (usize, Vec<u8>) {
        std::thread::scope(|s| {
            s.spawn(|| {
                let top = stack_pointer();
                paint_stack();
                op();
                let stack = read_stack(top);
                let first_changed = stack
                    .chunks_exact(8)
                    .position(|w| w != PAINT.to_ne_bytes())
                    .unwrap_or(stack.len() / 8);
                (stack.len() - first_changed * 8, stack)
            })
            .join()
            .expect("probe thread")
        })
    }

    /// Whether `needle` occurs in `hay`.
    pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn probe_sees_what_is_left_and_scrub_removes_it() {
        // The "secret" is derived inside `leave`, so the caller never holds it (a value
        // the caller keeps in a register could be spilled by any later call).
        fn derive(x: u64) -> u64 {
            x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) ^ 0x0123_4567_89ab_cdef
        }
        #[inline(never)]
        fn leave(x: u64) -> u32 {
            let mut a = [derive(x); 64];
            std::hint::black_box(&mut a);
            a[3].count_ones()
        }
        let x = std::hint::black_box(5u64);
        let secret = derive(5);
        let (depth, stack) = stack_after(|| {
            std::hint::black_box(leave(x));
        });
        assert!(depth >= 512, "depth {depth}");
        assert!(contains(&stack, &secret.to_ne_bytes()));
        let (depth, stack) = stack_after(|| {
            std::hint::black_box(super::scrubbed(|| leave(x)));
        });
        assert!(depth >= SCRUB_BYTES, "the scrub wrote {depth} bytes");
        assert!(!contains(&stack, &secret.to_ne_bytes()));
    }
}
