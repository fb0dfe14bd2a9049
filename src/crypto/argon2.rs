//! Passphrase stretching for the key store: Argon2id (the `argon2` crate). The store then
//! derives its keys from the Argon2id output (or from a master key) with
//! [`super::hkdf`].
//!
//! The output is written into a caller-provided buffer (a guarded region). Argon2's
//! working memory (`memory_kib` KiB, 64 MiB by
//! default: far above a typical 8 MiB `RLIMIT_MEMLOCK`, so it cannot be a locked region)
//! is a heap allocation that is zeroized before the call returns; the crate's `zeroize`
//! feature wipes its initial hash and final block.

use zeroize::Zeroize;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Degree of parallelism (computed sequentially here).
    pub lanes: u32,
}

impl Argon2Params {
    /// The defaults for new stores: 64 MiB, 3 passes, 1 lane (RFC 9106 §4 second
    /// recommended option).
    pub const DEFAULT: Argon2Params = Argon2Params {
        memory_kib: 64 * 1024,
        iterations: 3,
        lanes: 1,
    };
    /// Smallest memory accepted (1 MiB; for tests and small hosts only).
    pub const MIN_MEMORY_KIB: u32 = 1024;
    /// Largest memory accepted (1 GiB), so a damaged file cannot make us allocate more.
    pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
    /// Largest number of passes accepted.
    pub const MAX_ITERATIONS: u32 = 64;
    /// Largest total work accepted, memory x passes (4 GiB-passes, e.g. 1 GiB x 4 or
    /// 64 MiB x 64): a store file's header is only authenticated *after* the KDF has run,
    /// so this bounds what a tampered header can make `open` spend (seconds, not minutes).
    pub const MAX_WORK_KIB_PASSES: u64 = 4 * 1024 * 1024;
    /// Largest number of lanes accepted.
    pub const MAX_LANES: u32 = 16;

    /// Check the parameters against the enforced bounds; the error says which is off.
    pub fn check(&self) -> Result<(), String> {
        if !(Self::MIN_MEMORY_KIB..=Self::MAX_MEMORY_KIB).contains(&self.memory_kib) {
            return Err(format!(
                "Argon2 memory must be between {} and {} KiB",
                Self::MIN_MEMORY_KIB,
                Self::MAX_MEMORY_KIB
            ));
        }
        if !(1..=Self::MAX_ITERATIONS).contains(&self.iterations) {
            return Err(format!(
                "Argon2 iterations must be between 1 and {}",
                Self::MAX_ITERATIONS
            ));
        }
        if !(1..=Self::MAX_LANES).contains(&self.lanes) {
            return Err(format!(
                "Argon2 lanes must be between 1 and {}",
                Self::MAX_LANES
            ));
        }
        if self.memory_kib < 8 * self.lanes {
            return Err("Argon2 memory must be at least 8 KiB per lane".to_owned());
        }
        if u64::from(self.memory_kib) * u64::from(self.iterations) > Self::MAX_WORK_KIB_PASSES {
            return Err(format!(
                "Argon2 memory x iterations must be at most {} KiB-passes (e.g. 1 GiB x 4)",
                Self::MAX_WORK_KIB_PASSES
            ));
        }
        Ok(())
    }
}

/// A KDF failure (bad parameters or lengths). Carries no secret data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KdfError(pub String);

/// Argon2id (v1.3) of `password` with `salt` into `out`.
pub fn argon2id(
    password: &[u8],
    salt: &[u8],
    params: Argon2Params,
    out: &mut [u8],
) -> Result<(), KdfError> {
    params.check().map_err(KdfError)?;
    let p = ::argon2::Params::new(
        params.memory_kib,
        params.iterations,
        params.lanes,
        Some(out.len()),
    )
    .map_err(|e| KdfError(format!("invalid Argon2 parameters: {e}")))?;
    let blocks = p.block_count();
    let a = ::argon2::Argon2::new(::argon2::Algorithm::Argon2id, ::argon2::Version::V0x13, p);
    // Fallible: a failed allocation is an error, not an abort of the process.
    let mut memory: Vec<::argon2::Block> = Vec::new();
    memory.try_reserve_exact(blocks).map_err(|_| {
        KdfError(format!(
            "cannot allocate {} KiB of memory for Argon2",
            params.memory_kib
        ))
    })?;
    memory.resize(blocks, ::argon2::Block::default());
    let r = a.hash_password_into_with_memory(password, salt, out, &mut memory[..]);
    memory.zeroize();
    r.map_err(|e| KdfError(format!("Argon2 failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::crypto::unhex;

    /// RFC 9106 §5.3 uses a secret and associated data, which the store does not; the
    /// expected value was computed with pyca/cryptography's `Argon2id` (OpenSSL), t=1,
    /// m=1024 KiB, p=1, 32 bytes.
    #[test]
    fn argon2id_known_answer_and_bounds() {
        let mut out = [0u8; 32];
        let p = Argon2Params {
            memory_kib: 1024,
            iterations: 1,
            lanes: 1,
        };
        argon2id(b"password", b"somesaltsomesalt", p, &mut out).expect("argon2");
        assert_eq!(
            out.to_vec(),
            unhex("16253e23a29b20d7c7a0c05f9150e74baaa6cf1832edc838d484fc250a02bef9")
        );
        let mut again = [0u8; 32];
        argon2id(b"password", b"somesaltsomesalt", p, &mut again).expect("argon2");
        assert_eq!(out, again);
        argon2id(b"passwore", b"somesaltsomesalt", p, &mut again).expect("argon2");
        assert_ne!(out, again);
        for bad in [
            Argon2Params {
                memory_kib: 1023,
                ..p
            },
            Argon2Params { iterations: 0, ..p },
            Argon2Params { lanes: 0, ..p },
            Argon2Params { lanes: 17, ..p },
            Argon2Params {
                memory_kib: Argon2Params::MAX_MEMORY_KIB + 1,
                ..p
            },
        ] {
            assert!(argon2id(b"password", b"somesaltsomesalt", bad, &mut out).is_err());
        }
    }
}
