//! Adding a key with possessor-only permissions.
//!
//! What the kernel allows: `add_key(2)` creates a key and links it into the destination
//! keyring in one step (there is no unlinked creation), with the default permissions of
//! a `user` key, `0x3f010000`: everything for possessors, *view* (type, uid, gid, perm,
//! description) for other processes of the same uid, nothing for group or other. No
//! process that does not possess the key can read the payload at any moment. And if the
//! destination already holds a `user` key of that description, `add_key` *updates that
//! key in place*, keeping its permissions, which may be wider.
//!
//! So [`store`] never adds into the target: a scoped thread adds the key into its own,
//! brand-new thread keyring (a new thread starts without one, so it is empty and only that
//! thread possesses it), sets `0x3f000000` (and the timeout), and only then links the key
//! into the target, displacing any key of the same description there; the staging link
//! goes when the thread ends. The only window left: for the microseconds between
//! `add_key` and `KEYCTL_SETPERM`, same-uid processes may *view* the key's description
//! through its serial; they can never read it, and it is not in the target yet.
//!
//! The target `"thread"` (the caller's own thread keyring) cannot be reached from another
//! thread, so there the key is added directly after unlinking any key of the same
//! description; the same view-only window applies.

use linux_keyutils::{Key, KeyPermissions, KeyRing, KeyRingIdentifier};

use super::{KeyringError, KeyringErrorKind, Target, POSSESSOR_ONLY};

/// Add a `user` key `description` with `payload` (read where it is, e.g. in a guarded
/// region) to `target` with possessor-only permissions and an optional expiry in seconds
/// (`0` is refused by the caller: the kernel reads it as "no expiry"). Returns its serial.
pub fn store(
    target: Target,
    description: &str,
    payload: &[u8],
    timeout: Option<u32>,
) -> Result<i32, KeyringError> {
    let ring = target.resolve(true)?;
    if target == Target::Thread {
        if let Ok(old) = ring.search(description) {
            // Not linked directly (found in a nested keyring) is fine: nothing to displace.
            let _ = ring.unlink_key(old);
        }
        let key = ring.add_key(description, payload)?;
        return finish(key, timeout)
            .map(|()| key.get_id().as_raw_id())
            .inspect_err(|_| {
                let _ = key.invalidate();
            });
    }
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("keycell-keyring".to_owned())
            .spawn_scoped(s, || stage_and_link(ring, description, payload, timeout))
            .map_err(|e| match e.raw_os_error() {
                Some(errno) => KeyringError::from_errno(errno),
                None => KeyringError::of(KeyringErrorKind::Other),
            })?
            .join()
            .unwrap_or(Err(KeyringError::of(KeyringErrorKind::Other)))
    })
}

/// In a fresh thread: add into the thread's own keyring, restrict, then link into `ring`.
fn stage_and_link(
    ring: KeyRing,
    description: &str,
    payload: &[u8],
    timeout: Option<u32>,
) -> Result<i32, KeyringError> {
    let staging = KeyRing::from_special_id(KeyRingIdentifier::Thread, true)?;
    let key = staging.add_key(description, payload)?;
    let linked = finish(key, timeout).and_then(|()| Ok(ring.link_key(key)?));
    if linked.is_err() {
        let _ = key.invalidate();
    }
    let _ = staging.unlink_key(key);
    linked.map(|()| key.get_id().as_raw_id())
}

/// Possessor-only permissions, then the expiry.
fn finish(key: Key, timeout: Option<u32>) -> Result<(), KeyringError> {
    key.set_perms(KeyPermissions::from_u32(POSSESSOR_ONLY))?;
    if let Some(seconds) = timeout {
        key.set_timeout(seconds as usize)?;
    }
    Ok(())
}
