//! The process environment seam: settings and the password lookup read variables and the home folder
//! through [`ProcessEnv`], so tests hand in a fake; and the bounded read of the user's text files
//! (config file, kubeconfig), so a mistyped path such as `/dev/zero` cannot exhaust memory. A leaf
//! module.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The process environment the settings are resolved from, so resolution is testable.
pub trait ProcessEnv {
    /// A variable's value; unset and empty are the same (as for libpq and kubectl).
    fn var(&self, name: &str) -> Option<String>;
    fn home(&self) -> Option<PathBuf>;
}

/// The real process environment.
pub struct RealEnv;

impl ProcessEnv for RealEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
    fn home(&self) -> Option<PathBuf> {
        std::env::home_dir()
    }
}

/// Reads a text file of at most `limit` bytes; `Ok(None)` when it is larger (or endless).
pub fn read_text_bounded(path: &Path, limit: u64) -> std::io::Result<Option<String>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Ok(None);
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_and_large_files_are_not_read_whole() {
        assert_eq!(
            read_text_bounded(Path::new("/dev/zero"), 1024).unwrap(),
            None
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(read_text_bounded(&path, 3).unwrap().as_deref(), Some("abc"));
        assert_eq!(read_text_bounded(&path, 2).unwrap(), None);
    }
}
