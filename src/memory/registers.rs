//! Clearing the CPU's vector registers after secret work.
//!
//! Stack scrubbing (`crypto/scrub.rs`) wipes what a computation left in memory, but SIMD
//! code (AES-NI key expansion, vectorised copies) also leaves secrets in the vector
//! registers, and code that runs later may store them to the stack wholesale: the dynamic
//! linker's lazy-binding trampoline (`_dl_runtime_resolve_xsave`) saves every vector
//! register on the stack the first time a function of a library is called, and a signal
//! frame does too. The memory scan found the first 16 bytes of an AES-256 key on the
//! stack that way, after the first `AESGCM(key).encrypt` (gone with `LD_BIND_NOW=1`).
//! [`clear_vector_registers`] zeroes them; the scrubbing helpers call it.

/// Zero the vector registers (`ymm0`–`ymm15`, and `zmm16`–`zmm31` where AVX-512 exists;
/// `xmm0`–`xmm15` without AVX). Cheap (one instruction, or a few), no memory effects.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
pub fn clear_vector_registers() {
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: AVX is present (checked above), so `vzeroall` is a valid instruction; it
        // only writes the vector registers, all declared clobbered, touches no memory and
        // leaves the flags alone.
        unsafe {
            std::arch::asm!(
                "vzeroall",
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
                options(nomem, nostack, preserves_flags),
            );
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F is present (checked just above), which is all
            // `clear_upper_zmm`'s `target_feature` requires.
            unsafe { clear_upper_zmm() };
        }
    } else {
        // SAFETY: SSE2 is part of x86-64, so `xorps` on xmm0-15 is always valid; it only
        // writes those registers, all declared clobbered, touches no memory and no flags.
        unsafe {
            std::arch::asm!(
                "xorps xmm0, xmm0", "xorps xmm1, xmm1", "xorps xmm2, xmm2",
                "xorps xmm3, xmm3", "xorps xmm4, xmm4", "xorps xmm5, xmm5",
                "xorps xmm6, xmm6", "xorps xmm7, xmm7", "xorps xmm8, xmm8",
                "xorps xmm9, xmm9", "xorps xmm10, xmm10", "xorps xmm11, xmm11",
                "xorps xmm12, xmm12", "xorps xmm13, xmm13", "xorps xmm14, xmm14",
                "xorps xmm15, xmm15",
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
                options(nomem, nostack, preserves_flags),
            );
        }
    }
}

/// `zmm16`–`zmm31` (AVX-512 only; `vzeroall` leaves them).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn clear_upper_zmm() {
    // SAFETY: this function is only compiled with and called under AVX-512F (the caller
    // checks it at run time), so `vpxord` on zmm16-31 is valid; it writes only those
    // registers, all declared clobbered, and no memory or flags.
    unsafe {
        std::arch::asm!(
            "vpxord zmm16, zmm16, zmm16", "vpxord zmm17, zmm17, zmm17",
            "vpxord zmm18, zmm18, zmm18", "vpxord zmm19, zmm19, zmm19",
            "vpxord zmm20, zmm20, zmm20", "vpxord zmm21, zmm21, zmm21",
            "vpxord zmm22, zmm22, zmm22", "vpxord zmm23, zmm23, zmm23",
            "vpxord zmm24, zmm24, zmm24", "vpxord zmm25, zmm25, zmm25",
            "vpxord zmm26, zmm26, zmm26", "vpxord zmm27, zmm27, zmm27",
            "vpxord zmm28, zmm28, zmm28", "vpxord zmm29, zmm29, zmm29",
            "vpxord zmm30, zmm30, zmm30", "vpxord zmm31, zmm31, zmm31",
            out("zmm16") _, out("zmm17") _, out("zmm18") _, out("zmm19") _,
            out("zmm20") _, out("zmm21") _, out("zmm22") _, out("zmm23") _,
            out("zmm24") _, out("zmm25") _, out("zmm26") _, out("zmm27") _,
            out("zmm28") _, out("zmm29") _, out("zmm30") _, out("zmm31") _,
            options(nomem, nostack, preserves_flags),
        );
    }
}

/// Nothing to clear on targets keycell does not build SIMD code for.
#[cfg(not(target_arch = "x86_64"))]
pub fn clear_vector_registers() {}
