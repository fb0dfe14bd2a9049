//! Accelerated kernels: arithmetic written for one CPU feature set, chosen at run time,
//! with the portable code of the layer above as the fallback.
//!
//! This is the one module of keycell outside the memory layer, the system-call module
//! and the buffer glue where `unsafe` is allowed, and only for one thing: calling a
//! function compiled with `#[target_feature(enable = ...)]` after
//! `is_x86_feature_detected!` confirmed the CPU has those features (each block says so
//! in its `SAFETY` comment). The kernels themselves are safe code over intrinsics.
//!
//! A kernel knows nothing of guarded memory, scrubbing or Python: it computes over the
//! slices it is given and leaves wiping the stack it used to the caller
//! (`crate::crypto::scrub`), which runs it under the same stack scrub as the portable
//! path.

#![allow(unsafe_code)]

pub mod x25519;
