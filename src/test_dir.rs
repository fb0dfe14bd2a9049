//! Fresh private directories for the crate's unit tests (compiled only under `cfg(test)`).
//! Every call makes a new directory with a random name, so tests running in parallel
//! threads, or two `cargo test` runs at once, never share one.

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

/// A new directory `keycell-<what>-<16 hex digits>` of mode 0700 under the system's temp
/// directory. The test removes it when it is done with it.
pub(crate) fn fresh(what: &str) -> PathBuf {
    let mut r = [0u8; 8];
    crate::memory::fill_random(&mut r).expect("random");
    let name: String = r.iter().map(|b| format!("{b:02x}")).collect();
    let p = std::env::temp_dir().join(format!("keycell-{what}-{name}"));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&p)
        .expect("mkdir");
    p
}
