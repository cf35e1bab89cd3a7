//! Where the tool keeps its embedded store when it is given no configuration.

use std::path::PathBuf;

/// The embedded store used without a configuration:
/// `<user data dir>/keymgr/store.sealed` (e.g.
/// `~/.local/share/keymgr/store.sealed`), with its key file
/// (`keymgr_mock::default_key_file_for`) beside it. `None` when the platform
/// has no user data directory.
pub(super) fn default_store_path() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("keymgr").join("store.sealed"))
}

#[cfg(test)]
mod tests {
    use super::default_store_path;

    #[test]
    fn default_store_path_is_under_the_user_data_dir() {
        if let Some(p) = default_store_path() {
            assert!(p.ends_with("keymgr/store.sealed"), "{}", p.display());
            assert!(dirs::data_dir().is_some_and(|d| p.starts_with(d)));
        } else {
            eprintln!("skipped: no user data directory on this machine; nothing to check");
        }
    }
}
