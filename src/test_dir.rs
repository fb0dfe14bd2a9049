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

/// Write `data` to a new or truncated file at `path` and set its mode to `mode`.
pub(crate) fn write_file(path: &std::path::Path, data: &[u8], mode: u32) {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let mut f = std::fs::File::create(path).expect("create");
    f.write_all(data).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
