//! X25519 (RFC 7748 §5) on four 64-bit limbs with MULX, for x86-64 CPUs that have BMI2
//! (Intel since Haswell, AMD since Excavator).
//!
//! # Why a kernel of our own and not `curve25519-dalek`'s ladder
//!
//! `curve25519-dalek`'s portable backend (the one its Montgomery ladder uses) holds a
//! field element in five 51-bit limbs: a multiplication is 25 64x64-bit products and a
//! carry pass. Four 64-bit limbs need 16 products (10 for a square), with the reduction
//! modulo 2^255-19 folded in as `2^256 = 38 (mod p)`, and BMI2's `mulx` leaves the flags
//! alone so the additions run as plain carry chains. This is the representation OpenSSL's
//! and the fastest published x86-64 X25519 implementations use; it is what closes the gap
//! to pyca/cryptography (OpenSSL) measured in `benches/run.py` (the kernel takes about
//! 0.8 of the time of dalek's fastest route here, `benches/x25519_route.rs`). The dalek
//! path stays the fallback for every other CPU (`crate::crypto::x25519`).
//!
//! The kernel is safe Rust over `u128` products and `_addcarry_u64`/`_subborrow_u64`
//! carry chains, compiled for BMI2 (so every product is one `mulx`). It does not ask for
//! ADX: ADCX/ADOX (two interleaved carry chains) are what hand-scheduled assembly adds,
//! and the compiler does not emit them from the intrinsics, so requiring ADX would only
//! narrow the CPUs (and valgrind, which hides ADX, could no longer run the memcheck
//! test). The helpers are `inline(always)`, so one ladder step is one function that the
//! compiler schedules as a whole.
//!
//! # Representation
//!
//! A field element is `[u64; 4]`, little-endian limbs, any value below 2^256 standing for
//! its residue modulo p = 2^255-19 (not necessarily reduced). Every operation takes and
//! returns such values; [`freeze`] reduces to the canonical `0..p` once, at the end.
//!
//! # Constant time
//!
//! No branch and no memory index depends on the scalar or on any intermediate value: the
//! ladder visits the 255 scalar bits in a fixed order (the loop counter, public, picks
//! the byte), swaps by masks ([`cswap`]), and the carries of the modular reduction are
//! folded in by multiplying or masking with them, never by branching. Every operation on
//! secret-derived words uses the wrapping or carrying forms, so the release build's
//! overflow checks add no secret-dependent branch either. A memcheck test
//! (`ladder_is_constant_time_under_memcheck`) runs the ladder under valgrind with the
//! scalar marked undefined and fails on any branch or address that depends on it.
//!
//! # Secrets on the stack
//!
//! The kernel zeroizes its copy of the scalar and the ladder state before it returns;
//! the caller runs it under `crate::crypto::scrub` like the portable path, which
//! overwrites whatever else the compiler spilled.

#[cfg(target_arch = "x86_64")]
use zeroize::Zeroize;

/// Bytes of a scalar, a u-coordinate and a result.
pub const LEN: usize = 32;

/// Whether this CPU can run [`x25519`] (BMI2; detected once, then cached by the
/// standard library).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("bmi2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// RFC 7748's `X25519(scalar, u)` (the scalar clamped, the top bit of `u` ignored, `u`
/// reduced modulo p) written into `out`. Returns false, and leaves `out` alone, when the
/// CPU lacks the features ([`available`]); the caller then takes its portable path.
pub fn x25519(scalar: &[u8; LEN], u: &[u8; LEN], out: &mut [u8; LEN]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if available() {
            // SAFETY: `x25519_bmi2` is compiled for BMI2 and needs nothing else;
            // `available()` just confirmed at run time that this CPU has it.
            unsafe { bmi2::x25519_bmi2(scalar, u, out) };
            return true;
        }
    }
    let _ = (scalar, u, out);
    false
}

/// Test support: the ladder's last state (x2, z2, x3, z3) and the inverse of z2 that
/// [`x25519`] computes for these inputs, limb by limb, so that stack tests can search
/// for them; `None` without BMI2.
#[cfg(test)]
pub(crate) fn ladder_limbs(scalar: &[u8; LEN], u: &[u8; LEN]) -> Option<[[u64; 4]; 5]> {
    #[cfg(target_arch = "x86_64")]
    {
        if available() {
            // SAFETY: BMI2 is present (checked just above), all `ladder_limbs` needs.
            return Some(unsafe { bmi2::ladder_limbs(scalar, u) });
        }
    }
    let _ = (scalar, u);
    None
}

#[cfg(target_arch = "x86_64")]
mod bmi2 {
    use core::arch::x86_64::{_addcarry_u64, _subborrow_u64};

    use super::{Zeroize, LEN};

    /// A field element: four little-endian limbs, any value below 2^256.
    pub(super) type Fe = [u64; 4];

    const ONE: Fe = [1, 0, 0, 0];
    const ZERO: Fe = [0, 0, 0, 0];
    /// (A - 2) / 4 for curve25519's A = 486662 (RFC 7748 §5).
    const A24: u64 = 121_665;

    /// All ones if `bit` is 1, zero if it is 0.
    #[inline(always)]
    fn mask(bit: u8) -> u64 {
        0u64.wrapping_sub(u64::from(bit))
    }

    /// The product of two limbs as (low, high): one `mulx` in the BMI2 functions this is
    /// inlined into (the helpers are `inline(always)` so that the whole ladder step is
    /// one function the compiler schedules and keeps in registers).
    #[inline(always)]
    fn mul_limb(a: u64, b: u64) -> (u64, u64) {
        let p = u128::from(a).wrapping_mul(u128::from(b));
        (p as u64, (p >> 64) as u64)
    }

    /// `a * b` for four limbs times one: five limbs.
    #[inline(always)]
    fn mul_row(a: &Fe, b: u64) -> [u64; 5] {
        let (l0, h0) = mul_limb(a[0], b);
        let (l1, h1) = mul_limb(a[1], b);
        let (l2, h2) = mul_limb(a[2], b);
        let (l3, h3) = mul_limb(a[3], b);
        let mut r = [l0, 0, 0, 0, 0];
        let c = _addcarry_u64(0, l1, h0, &mut r[1]);
        let c = _addcarry_u64(c, l2, h1, &mut r[2]);
        let c = _addcarry_u64(c, l3, h2, &mut r[3]);
        // No carry out: a * b < 2^320.
        _addcarry_u64(c, h3, 0, &mut r[4]);
        r
    }

    /// `lo + 38 * hi` for the low and high halves of a 512-bit value: below 2^256 and
    /// congruent to it modulo p (2^256 = 38 mod p).
    #[inline(always)]
    fn reduce_wide(t: &[u64; 8]) -> Fe {
        let hi = [t[4], t[5], t[6], t[7]];
        let v = mul_row(&hi, 38);
        let mut r = [0u64; 4];
        let c = _addcarry_u64(0, t[0], v[0], &mut r[0]);
        let c = _addcarry_u64(c, t[1], v[1], &mut r[1]);
        let c = _addcarry_u64(c, t[2], v[2], &mut r[2]);
        let c = _addcarry_u64(c, t[3], v[3], &mut r[3]);
        // v[4] < 38 and c <= 1: the top word is at most 38.
        let top = v[4].wrapping_add(u64::from(c));
        fold_carry(r, top.wrapping_mul(38))
    }

    /// `r + add` (add < 2^64 - 38) below 2^256: a carry out of the top limb is worth 38
    /// more, added to the lowest limb, which is then small enough to take it.
    #[inline(always)]
    fn fold_carry(mut r: Fe, add: u64) -> Fe {
        let c = _addcarry_u64(0, r[0], add, &mut r[0]);
        let c = _addcarry_u64(c, r[1], 0, &mut r[1]);
        let c = _addcarry_u64(c, r[2], 0, &mut r[2]);
        let c = _addcarry_u64(c, r[3], 0, &mut r[3]);
        // After a carry out r is below `add`, so adding 38 cannot carry again.
        r[0] = r[0].wrapping_add(mask(c) & 38);
        r
    }

    /// `a * b` modulo p.
    #[inline(always)]
    pub(super) fn mul(a: &Fe, b: &Fe) -> Fe {
        let mut t = [0u64; 8];
        let r = mul_row(a, b[0]);
        t[..5].copy_from_slice(&r);
        for i in 1..4 {
            let r = mul_row(a, b[i]);
            let c = _addcarry_u64(0, t[i], r[0], &mut t[i]);
            let c = _addcarry_u64(c, t[i + 1], r[1], &mut t[i + 1]);
            let c = _addcarry_u64(c, t[i + 2], r[2], &mut t[i + 2]);
            let c = _addcarry_u64(c, t[i + 3], r[3], &mut t[i + 3]);
            // t[i + 4] is still zero and the partial product fits in i + 5 limbs.
            _addcarry_u64(c, r[4], 0, &mut t[i + 4]);
        }
        reduce_wide(&t)
    }

    /// `a^2` modulo p: the six cross products once, doubled, plus the four squares.
    #[inline(always)]
    pub(super) fn sqr(a: &Fe) -> Fe {
        let (l01, h01) = mul_limb(a[0], a[1]);
        let (l02, h02) = mul_limb(a[0], a[2]);
        let (l03, h03) = mul_limb(a[0], a[3]);
        let (l12, h12) = mul_limb(a[1], a[2]);
        let (l13, h13) = mul_limb(a[1], a[3]);
        let (l23, h23) = mul_limb(a[2], a[3]);
        // s[1..7]: the sum of a_i a_j 2^(64(i+j)) over i < j.
        let mut s = [0u64; 8];
        s[1] = l01;
        let c = _addcarry_u64(0, l02, h01, &mut s[2]);
        let c = _addcarry_u64(c, l03, h02, &mut s[3]);
        _addcarry_u64(c, h03, 0, &mut s[4]);
        // Row a1 * (a2, a3) at limbs 3..6.
        let mut v = [0u64; 3];
        let c = _addcarry_u64(0, l13, h12, &mut v[0]);
        _addcarry_u64(c, h13, 0, &mut v[1]);
        let c = _addcarry_u64(0, s[3], l12, &mut s[3]);
        let c = _addcarry_u64(c, s[4], v[0], &mut s[4]);
        _addcarry_u64(c, v[1], 0, &mut s[5]);
        // a2 * a3 at limbs 5..7.
        let c = _addcarry_u64(0, s[5], l23, &mut s[5]);
        _addcarry_u64(c, h23, 0, &mut s[6]);
        // Double: s[7] takes the top bit.
        s[7] = s[6] >> 63;
        s[6] = (s[6] << 1) | (s[5] >> 63);
        s[5] = (s[5] << 1) | (s[4] >> 63);
        s[4] = (s[4] << 1) | (s[3] >> 63);
        s[3] = (s[3] << 1) | (s[2] >> 63);
        s[2] = (s[2] << 1) | (s[1] >> 63);
        s[1] <<= 1;
        // Plus the squares a_i^2 at limbs 2i, 2i+1.
        let (l0, h0) = mul_limb(a[0], a[0]);
        let (l1, h1) = mul_limb(a[1], a[1]);
        let (l2, h2) = mul_limb(a[2], a[2]);
        let (l3, h3) = mul_limb(a[3], a[3]);
        let mut t = [0u64; 8];
        t[0] = l0;
        let c = _addcarry_u64(0, s[1], h0, &mut t[1]);
        let c = _addcarry_u64(c, s[2], l1, &mut t[2]);
        let c = _addcarry_u64(c, s[3], h1, &mut t[3]);
        let c = _addcarry_u64(c, s[4], l2, &mut t[4]);
        let c = _addcarry_u64(c, s[5], h2, &mut t[5]);
        let c = _addcarry_u64(c, s[6], l3, &mut t[6]);
        _addcarry_u64(c, s[7], h3, &mut t[7]);
        reduce_wide(&t)
    }

    /// `a * 121665` modulo p.
    #[inline(always)]
    fn mul_a24(a: &Fe) -> Fe {
        let r = mul_row(a, A24);
        // r[4] < 121665, so 38 * r[4] fits easily.
        fold_carry([r[0], r[1], r[2], r[3]], r[4].wrapping_mul(38))
    }

    /// `a + b` modulo p.
    #[inline(always)]
    pub(super) fn add(a: &Fe, b: &Fe) -> Fe {
        let mut r = [0u64; 4];
        let c = _addcarry_u64(0, a[0], b[0], &mut r[0]);
        let c = _addcarry_u64(c, a[1], b[1], &mut r[1]);
        let c = _addcarry_u64(c, a[2], b[2], &mut r[2]);
        let c = _addcarry_u64(c, a[3], b[3], &mut r[3]);
        fold_carry(r, mask(c) & 38)
    }

    /// `a - b` modulo p: a borrow out of the top limb means 2^256 was added, so 38 is
    /// taken off (twice at most).
    #[inline(always)]
    pub(super) fn sub(a: &Fe, b: &Fe) -> Fe {
        let mut r = [0u64; 4];
        let c = _subborrow_u64(0, a[0], b[0], &mut r[0]);
        let c = _subborrow_u64(c, a[1], b[1], &mut r[1]);
        let c = _subborrow_u64(c, a[2], b[2], &mut r[2]);
        let c = _subborrow_u64(c, a[3], b[3], &mut r[3]);
        let c = _subborrow_u64(0, r[0], mask(c) & 38, &mut r[0]);
        let c = _subborrow_u64(c, r[1], 0, &mut r[1]);
        let c = _subborrow_u64(c, r[2], 0, &mut r[2]);
        let c = _subborrow_u64(c, r[3], 0, &mut r[3]);
        // After a second borrow r is at least 2^256 - 38, so this cannot borrow.
        r[0] = r[0].wrapping_sub(mask(c) & 38);
        r
    }

    /// Swap `a` and `b` when `m` is all ones, leave them when it is zero.
    #[inline(always)]
    fn cswap(m: u64, a: &mut Fe, b: &mut Fe) {
        for i in 0..4 {
            let t = m & (a[i] ^ b[i]);
            a[i] ^= t;
            b[i] ^= t;
        }
    }

    /// `a^(2^n)`.
    #[inline(always)]
    fn sqr_n(a: &Fe, n: u32) -> Fe {
        let mut r = sqr(a);
        for _ in 1..n {
            r = sqr(&r);
        }
        r
    }

    /// `z^(p-2)`, the inverse of z (0 for 0): 254 squarings and 11 multiplications.
    #[target_feature(enable = "bmi2")]
    #[inline(never)]
    pub(super) fn invert(z: &Fe) -> Fe {
        let z2 = sqr(z); // 2
        let z9 = mul(&sqr_n(&z2, 2), z); // 9
        let z11 = mul(&z9, &z2); // 11
        let z_5_0 = mul(&sqr(&z11), &z9); // 2^5 - 1
        let z_10_0 = mul(&sqr_n(&z_5_0, 5), &z_5_0); // 2^10 - 1
        let z_20_0 = mul(&sqr_n(&z_10_0, 10), &z_10_0); // 2^20 - 1
        let z_40_0 = mul(&sqr_n(&z_20_0, 20), &z_20_0); // 2^40 - 1
        let z_50_0 = mul(&sqr_n(&z_40_0, 10), &z_10_0); // 2^50 - 1
        let z_100_0 = mul(&sqr_n(&z_50_0, 50), &z_50_0); // 2^100 - 1
        let z_200_0 = mul(&sqr_n(&z_100_0, 100), &z_100_0); // 2^200 - 1
        let z_250_0 = mul(&sqr_n(&z_200_0, 50), &z_50_0); // 2^250 - 1
        mul(&sqr_n(&z_250_0, 5), &z11) // 2^255 - 32 + 11 = p - 2
    }

    /// The canonical residue `0..p` of `a`.
    #[inline(always)]
    pub(super) fn freeze(a: &Fe) -> Fe {
        // Fold bit 255 (2^255 = 19 mod p): now r < 2^255 + 19.
        let top = a[3] >> 63;
        let r = fold_carry(
            [a[0], a[1], a[2], a[3] & (u64::MAX >> 1)],
            top.wrapping_mul(19),
        );
        // r >= p exactly when r + 19 reaches 2^255; then r - p = r + 19 - 2^255.
        let mut s = [0u64; 4];
        let c = _addcarry_u64(0, r[0], 19, &mut s[0]);
        let c = _addcarry_u64(c, r[1], 0, &mut s[1]);
        let c = _addcarry_u64(c, r[2], 0, &mut s[2]);
        _addcarry_u64(c, r[3], 0, &mut s[3]);
        // Through `black_box`: without it the release build branched on this mask (the
        // memcheck test caught it).
        let ge = core::hint::black_box(0u64.wrapping_sub(s[3] >> 63));
        s[3] &= u64::MAX >> 1;
        let mut out = [0u64; 4];
        for i in 0..4 {
            out[i] = (s[i] & ge) | (r[i] & !ge);
        }
        out
    }

    /// Little-endian bytes to limbs, the top bit cleared (RFC 7748 §5).
    pub(super) fn decode_u(u: &[u8; LEN]) -> Fe {
        let mut r = [0u64; 4];
        for (limb, chunk) in r.iter_mut().zip(u.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            *limb = u64::from_le_bytes(w);
        }
        r[3] &= u64::MAX >> 1;
        r
    }

    /// The Montgomery ladder of RFC 7748 §5 over the clamped scalar `k`, returning the
    /// projective (x2, z2) of `k * u` (z2 = 0 for a result at infinity).
    #[target_feature(enable = "bmi2")]
    #[inline(never)]
    fn ladder(k: &[u8; LEN], x1: &Fe, state: &mut [Fe; 4]) {
        let [x2, z2, x3, z3] = state;
        *x2 = ONE;
        *z2 = ZERO;
        *x3 = *x1;
        *z3 = ONE;
        let mut swap = 0u8;
        for t in (0..255).rev() {
            let bit = (k[t >> 3] >> (t & 7)) & 1;
            swap ^= bit;
            // The mask goes through `black_box` so the optimiser cannot turn the
            // masked swap back into a branch on the bit.
            let m = core::hint::black_box(mask(swap));
            cswap(m, x2, x3);
            cswap(m, z2, z3);
            swap = bit;

            let a = add(x2, z2);
            let aa = sqr(&a);
            let b = sub(x2, z2);
            let bb = sqr(&b);
            let e = sub(&aa, &bb);
            let c = add(x3, z3);
            let d = sub(x3, z3);
            let da = mul(&d, &a);
            let cb = mul(&c, &b);
            *x3 = sqr(&add(&da, &cb));
            *z3 = mul(x1, &sqr(&sub(&da, &cb)));
            *x2 = mul(&aa, &bb);
            *z2 = mul(&e, &add(&aa, &mul_a24(&e)));
        }
        let m = core::hint::black_box(mask(swap));
        cswap(m, x2, x3);
        cswap(m, z2, z3);
    }

    /// [`super::x25519`] on this CPU.
    #[target_feature(enable = "bmi2")]
    pub(super) fn x25519_bmi2(scalar: &[u8; LEN], u: &[u8; LEN], out: &mut [u8; LEN]) {
        let mut k = *scalar;
        k[0] &= 248;
        k[31] &= 127;
        k[31] |= 64;
        let x1 = decode_u(u);
        let mut state = [ZERO; 4];
        ladder(&k, &x1, &mut state);
        let mut zi = invert(&state[1]);
        let mut r = freeze(&mul(&state[0], &zi));
        for (chunk, limb) in out.chunks_exact_mut(8).zip(r.iter()) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        k.zeroize();
        state.zeroize();
        zi.zeroize();
        r.zeroize();
    }

    /// [`super::ladder_limbs`] on this CPU: the steps of [`x25519_bmi2`], kept.
    #[cfg(test)]
    #[target_feature(enable = "bmi2")]
    pub(super) fn ladder_limbs(scalar: &[u8; LEN], u: &[u8; LEN]) -> [Fe; 5] {
        let mut k = *scalar;
        k[0] &= 248;
        k[31] &= 127;
        k[31] |= 64;
        let mut state = [ZERO; 4];
        ladder(&k, &decode_u(u), &mut state);
        let zi = invert(&state[1]);
        [state[0], state[1], state[2], state[3], zi]
    }

    /// The field operations for the tests, compiled for BMI2 as in the ladder and
    /// callable from safe test code only after the CPU check (each wrapper asserts it).
    #[cfg(test)]
    pub(super) mod checked {
        use super::Fe;

        #[target_feature(enable = "bmi2")]
        fn mul_bmi2(a: &Fe, b: &Fe) -> Fe {
            super::mul(a, b)
        }

        #[target_feature(enable = "bmi2")]
        fn sqr_bmi2(a: &Fe) -> Fe {
            super::sqr(a)
        }

        #[target_feature(enable = "bmi2")]
        fn mul_a24_bmi2(a: &Fe) -> Fe {
            super::mul_a24(a)
        }

        fn assert_cpu() {
            assert!(super::super::available(), "the CPU lacks BMI2");
        }

        pub(in super::super) fn mul(a: &Fe, b: &Fe) -> Fe {
            assert_cpu();
            // SAFETY: BMI2 is present (asserted above), all `mul_bmi2` needs.
            unsafe { mul_bmi2(a, b) }
        }

        pub(in super::super) fn sqr(a: &Fe) -> Fe {
            assert_cpu();
            // SAFETY: BMI2 is present (asserted above), all `sqr_bmi2` needs.
            unsafe { sqr_bmi2(a) }
        }

        pub(in super::super) fn mul_a24(a: &Fe) -> Fe {
            assert_cpu();
            // SAFETY: BMI2 is present (asserted above), all `mul_a24_bmi2` needs.
            unsafe { mul_a24_bmi2(a) }
        }

        pub(in super::super) fn invert(a: &Fe) -> Fe {
            assert_cpu();
            // SAFETY: BMI2 is present (asserted above), all `invert` needs.
            unsafe { super::invert(a) }
        }
    }
}

#[cfg(test)]
#[cfg(target_arch = "x86_64")]
mod tests {
    use super::bmi2::{checked, decode_u, freeze, Fe};
    use super::*;
    use curve25519_dalek::montgomery::MontgomeryPoint;

    fn arr(s: &str) -> [u8; 32] {
        let mut b = [0u8; 32];
        assert_eq!(s.len(), 64, "{s}");
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
        }
        b
    }

    fn run(k: &[u8; 32], u: &[u8; 32]) -> [u8; 32] {
        let mut out = [0u8; 32];
        assert!(x25519(k, u, &mut out), "the kernel ran");
        out
    }

    /// A fixed-seed generator (splitmix64): the same inputs on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn bytes(&mut self) -> [u8; 32] {
            let mut b = [0u8; 32];
            for c in b.chunks_exact_mut(8) {
                c.copy_from_slice(&self.next().to_le_bytes());
            }
            b
        }
        fn fe(&mut self) -> Fe {
            [self.next(), self.next(), self.next(), self.next()]
        }
    }

    const P: Fe = [
        0xffff_ffff_ffff_ffed,
        u64::MAX,
        u64::MAX,
        0x7fff_ffff_ffff_ffff,
    ];

    fn fe_bytes(a: &Fe) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (c, l) in b.chunks_exact_mut(8).zip(a) {
            c.copy_from_slice(&l.to_le_bytes());
        }
        b
    }

    /// Reference arithmetic modulo p, written differently from the kernel: 32-bit digits,
    /// `u128` column sums, folding 2^256 = 38 digit by digit until nothing is left above
    /// 2^256, then bit 255 and a final subtraction of p.
    fn reference_reduce(mut d: Vec<u128>) -> Fe {
        loop {
            // Normalise to 32-bit digits.
            let mut carry = 0u128;
            for x in d.iter_mut() {
                let v = *x + carry;
                *x = v & 0xffff_ffff;
                carry = v >> 32;
            }
            if carry != 0 {
                d.push(carry);
                continue;
            }
            if d.len() <= 8 || d[8..].iter().all(|&x| x == 0) {
                break;
            }
            let high: Vec<u128> = d.drain(8..).collect();
            for (i, h) in high.into_iter().enumerate() {
                d[i] += 38 * h;
            }
        }
        d.resize(8, 0);
        let mut v = [0u64; 4];
        for i in 0..4 {
            v[i] = (d[2 * i] | (d[2 * i + 1] << 32)) as u64;
        }
        // Below 2^256 now: fold bit 255, then subtract p while v >= p (twice at most).
        let top = v[3] >> 63;
        v[3] &= u64::MAX >> 1;
        let mut c = u128::from(top * 19);
        for limb in v.iter_mut() {
            let s = u128::from(*limb) + c;
            *limb = s as u64;
            c = s >> 64;
        }
        while (0..4).rev().map(|i| v[i].cmp(&P[i])).find(|o| o.is_ne())
            != Some(std::cmp::Ordering::Less)
        {
            let mut borrow = 0i128;
            for i in 0..4 {
                let s = i128::from(v[i]) - i128::from(P[i]) - borrow;
                v[i] = s as u64;
                borrow = i128::from(s < 0);
            }
        }
        v
    }

    fn digits(a: &Fe) -> Vec<u128> {
        a.iter()
            .flat_map(|l| [u128::from(l & 0xffff_ffff), u128::from(l >> 32)])
            .collect()
    }

    fn reference_mul(a: &Fe, b: &Fe) -> Fe {
        let (a, b) = (digits(a), digits(b));
        let mut d = vec![0u128; 16];
        for i in 0..8 {
            for j in 0..8 {
                d[i + j] += a[i] * b[j];
            }
        }
        reference_reduce(d)
    }

    fn reference_add(a: &Fe, b: &Fe) -> Fe {
        let d = digits(a)
            .iter()
            .zip(digits(b))
            .map(|(x, y)| x + y)
            .collect();
        reference_reduce(d)
    }

    /// a - b = a + (4p - b) for b < 2^256 < 4p.
    fn reference_sub(a: &Fe, b: &Fe) -> Fe {
        let four_p = [0xffff_ffff_ffff_ffb4u64, u64::MAX, u64::MAX, u64::MAX];
        // 4p = 2^257 - 76: as digits, 2^256 - 76 plus a digit 1 at 2^256.
        let mut d: Vec<u128> = digits(&four_p);
        d.push(1);
        let bd = digits(b);
        let mut borrow = 0i128;
        for (i, x) in d.iter_mut().enumerate() {
            let s = *x as i128 - bd.get(i).copied().unwrap_or(0) as i128 - borrow;
            borrow = i128::from(s < 0);
            *x = (s + (borrow << 32)) as u128;
        }
        assert_eq!(borrow, 0);
        for (x, y) in d.iter_mut().zip(digits(a)) {
            *x += y;
        }
        reference_reduce(d)
    }

    /// Values that stress the carries: 0, 1, p - 1, p, p + 1, 2^255 - 1, 2^255, 2^256 - 1,
    /// 2^256 - 38, single full limbs, and the like.
    fn edge_values() -> Vec<Fe> {
        let mut v = vec![
            [0, 0, 0, 0],
            [1, 0, 0, 0],
            [P[0] - 1, P[1], P[2], P[3]],
            P,
            [P[0] + 1, P[1], P[2], P[3]],
            [u64::MAX, u64::MAX, u64::MAX, u64::MAX >> 1],
            [0, 0, 0, 1 << 63],
            [u64::MAX; 4],
            [u64::MAX - 37, u64::MAX, u64::MAX, u64::MAX],
            [u64::MAX - 18, u64::MAX, u64::MAX, u64::MAX],
            [37, 0, 0, 0],
            [38, 0, 0, 0],
            [0, 0, 0, u64::MAX],
            [u64::MAX, 0, 0, 0],
            [0, u64::MAX, 0, u64::MAX],
        ];
        for i in 0..4 {
            let mut x = [0u64; 4];
            x[i] = 1 << 63;
            v.push(x);
        }
        v
    }

    #[test]
    fn field_operations_match_the_reference() {
        let mut rng = Rng(0x7832_5519_0001);
        let mut values = edge_values();
        for _ in 0..200 {
            values.push(rng.fe());
        }
        for a in &values {
            assert_eq!(freeze(&checked::sqr(a)), reference_mul(a, a), "sqr {a:x?}");
            let a24 = [121_665, 0, 0, 0];
            assert_eq!(
                freeze(&checked::mul_a24(a)),
                reference_mul(a, &a24),
                "a24 {a:x?}"
            );
            assert_eq!(freeze(a), reference_add(a, &[0; 4]), "freeze {a:x?}");
            for b in &values {
                assert_eq!(freeze(&checked::mul(a, b)), reference_mul(a, b));
                assert_eq!(freeze(&bmi2::add(a, b)), reference_add(a, b));
                assert_eq!(freeze(&bmi2::sub(a, b)), reference_sub(a, b));
            }
        }
    }

    #[test]
    fn invert_is_the_inverse() {
        let mut rng = Rng(0x7832_5519_0002);
        let mut values = edge_values();
        for _ in 0..50 {
            values.push(rng.fe());
        }
        for a in &values {
            let inv = checked::invert(a);
            let canonical = freeze(a);
            if canonical == [0; 4] {
                assert_eq!(freeze(&inv), [0; 4], "0 inverts to 0");
            } else {
                assert_eq!(freeze(&checked::mul(a, &inv)), [1, 0, 0, 0], "{a:x?}");
            }
        }
    }

    // RFC 7748 §5.2.
    #[test]
    fn rfc7748_vectors() {
        assert_eq!(
            run(
                &arr("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
                &arr("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"),
            ),
            arr("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")
        );
        assert_eq!(
            run(
                &arr("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d"),
                &arr("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493"),
            ),
            arr("95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957")
        );
    }

    // RFC 7748 §5.2, the iterated test: k = u = 9; k, u = X25519(k, u), k.
    #[test]
    fn rfc7748_iterations_1_and_1000() {
        let mut k = [0u8; 32];
        k[0] = 9;
        let mut u = k;
        for i in 1..=1000 {
            let r = run(&k, &u);
            u = k;
            k = r;
            if i == 1 {
                assert_eq!(
                    k,
                    arr("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079")
                );
            }
        }
        assert_eq!(
            k,
            arr("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51")
        );
    }

    /// u-coordinates that matter beyond random ones: the points of small order (and the
    /// same plus p, non-canonical), p - 1, p, p + 1, 2^255 - 1 and the high bit set.
    fn special_us() -> Vec<[u8; 32]> {
        let mut v = vec![
            [0u8; 32],
            arr("0100000000000000000000000000000000000000000000000000000000000000"),
            arr("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
            arr("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
            arr("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
            arr("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
            arr("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
            arr("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
            arr("cdeb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880"),
            arr("4c9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7"),
            [0xffu8; 32],
        ];
        let with_high_bit: Vec<[u8; 32]> = v
            .iter()
            .map(|u| {
                let mut h = *u;
                h[31] |= 0x80;
                h
            })
            .collect();
        v.extend(with_high_bit);
        v
    }

    /// The kernel against `curve25519-dalek`'s ladder over a fixed-seed stream of scalars
    /// and u-coordinates: random ones (about half on the twist), non-canonical ones (u in
    /// p..2^255, and the high bit set) and the special ones above with many scalars.
    #[test]
    fn matches_dalek_on_many_inputs() {
        let mut rng = Rng(0x7832_5519_0003);
        let mut count = 0;
        let mut check = |k: [u8; 32], u: [u8; 32]| {
            assert_eq!(
                run(&k, &u),
                MontgomeryPoint(u).mul_clamped(k).to_bytes(),
                "k {k:02x?} u {u:02x?}"
            );
            count += 1;
        };
        for i in 0..4000u32 {
            let k = rng.bytes();
            let mut u = rng.bytes();
            if i % 4 == 1 {
                // Non-canonical: p + (0..=18), below 2^255.
                let mut x = P;
                x[0] += rng.next() % 19;
                u = fe_bytes(&x);
            }
            if i % 8 == 3 {
                u[31] |= 0x80;
            }
            check(k, u);
        }
        for u in special_us() {
            for _ in 0..16 {
                check(rng.bytes(), u);
            }
        }
        // Scalars that clamping maps to the extremes.
        for k in [[0u8; 32], [0xff; 32]] {
            for _ in 0..16 {
                check(k, rng.bytes());
            }
        }
        assert_eq!(count, 4000 + special_us().len() * 16 + 32);
    }

    #[test]
    fn decode_clears_the_top_bit() {
        assert_eq!(
            decode_u(&[0xff; 32]),
            [u64::MAX, u64::MAX, u64::MAX, u64::MAX >> 1]
        );
    }

    // --- constant time, checked by valgrind's memcheck (the ctgrind technique) ---

    /// valgrind's client request (`valgrind.h`'s magic sequence for amd64): a no-op
    /// when not run under valgrind, which then returns `default`.
    fn client_request(args: &[u64; 6], default: u64) -> u64 {
        let result;
        // SAFETY: the four rotations of rdi add up to 128 bits (rdi is unchanged) and
        // `xchg rbx, rbx` leaves rbx unchanged: natively the sequence changes only the
        // flags. Under valgrind it reads `args` (six initialised words, alive for the
        // call) and writes the result to rdx.
        unsafe {
            std::arch::asm!(
                "rol rdi, 3", "rol rdi, 13", "rol rdi, 61", "rol rdi, 51",
                "xchg rbx, rbx",
                in("rax") args.as_ptr(),
                inout("rdx") default => result,
                out("rdi") _,
                options(nostack),
            );
        }
        result
    }

    const MAKE_MEM_UNDEFINED: u64 = 0x4d43_0001;
    const MAKE_MEM_DEFINED: u64 = 0x4d43_0002;

    fn mark(request: u64, bytes: &[u8]) {
        client_request(
            &[request, bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0],
            0,
        );
    }

    /// Run by valgrind (see below), never on its own: the kernel with the scalar marked
    /// undefined; memcheck reports any branch or address that depends on it.
    #[test]
    #[ignore = "run under valgrind by ladder_is_constant_time_under_memcheck"]
    fn memcheck_target_kernel() {
        let mut rng = Rng(0x7832_5519_0004);
        for _ in 0..2 {
            let k = rng.bytes();
            let u = rng.bytes();
            mark(MAKE_MEM_UNDEFINED, &k);
            let mut out = [0u8; 32];
            assert!(x25519(&k, &u, &mut out));
            mark(MAKE_MEM_DEFINED, &out);
            mark(MAKE_MEM_DEFINED, &k);
            std::hint::black_box(out);
        }
    }

    /// The control: a table lookup indexed by a scalar byte (what a non-constant-time
    /// table-based implementation does), which memcheck must report, so that a clean run
    /// of the kernel means something. An index rather than an `if`, which the release
    /// build turns into branch-free code.
    #[test]
    #[ignore = "run under valgrind by ladder_is_constant_time_under_memcheck"]
    fn memcheck_target_control() {
        let k = std::hint::black_box([0x5au8; 32]);
        let table: [u8; 256] = std::array::from_fn(|i| i as u8);
        mark(MAKE_MEM_UNDEFINED, &k);
        let r = std::hint::black_box(&table)[usize::from(k[3])];
        mark(MAKE_MEM_DEFINED, &k);
        std::hint::black_box(r);
    }

    /// Runs this test binary under valgrind twice: the kernel must come out clean, the
    /// control must be flagged. Skips (with a message) where valgrind is not installed.
    #[test]
    fn ladder_is_constant_time_under_memcheck() {
        if std::process::Command::new("valgrind")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("valgrind is not installed: constant-time check skipped");
            return;
        }
        let exe = std::env::current_exe().expect("test binary");
        let memcheck = |name: &str| {
            std::process::Command::new("valgrind")
                .args(["--tool=memcheck", "--error-exitcode=97", "-q"])
                .arg(&exe)
                .args(["--ignored", "--exact", "--test-threads=1", name])
                .output()
                .expect("run valgrind")
        };
        let kernel = memcheck("kernels::x25519::tests::memcheck_target_kernel");
        let report = String::from_utf8_lossy(&kernel.stderr);
        assert!(
            kernel.status.success(),
            "memcheck found secret-dependent code:\n{report}"
        );
        assert!(
            String::from_utf8_lossy(&kernel.stdout).contains("1 passed"),
            "the kernel target ran"
        );
        let control = memcheck("kernels::x25519::tests::memcheck_target_control");
        assert_eq!(
            control.status.code(),
            Some(97),
            "memcheck flags the control"
        );
        assert!(String::from_utf8_lossy(&control.stderr).contains("uninitialised"));
    }
}
