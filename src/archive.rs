//! Writing the support bundle: a gzip-compressed tar (the `tar` and `flate2` crates, pure Rust),
//! written to a temporary file in the target folder and renamed into place only when complete, so a
//! failed or interrupted run never leaves half an archive under the final name. The file is created
//! with mode 0600 (a bundle is for its maker and the people they send it to).

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

/// Why the archive could not be written (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot write the report into {}: {cause}", .dir.display())]
    Create {
        dir: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    #[error("cannot write the report {}: {cause}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
}

/// An archive being made: the temporary file exists from [`PendingArchive::create`] on (so a folder
/// that cannot be written is found before anything is gathered) and is removed unless
/// [`PendingArchive::finish`] renames it into place.
pub struct PendingArchive {
    file: tempfile::NamedTempFile,
    path: PathBuf,
    stem: String,
}

/// Archives of the same name tried before giving up (`NAME-2.tar.gz`, …): two reports made within
/// the same second keep both.
const MAX_SAME_NAME: u32 = 100;

impl PendingArchive {
    /// Creates the temporary file in `dir` for the archive `dir/STEM.tar.gz`, or `STEM-2.tar.gz`, … when
    /// that name is taken (an existing archive is never overwritten).
    pub fn create(dir: &Path, stem: &str) -> Result<PendingArchive, ArchiveError> {
        let file = tempfile::Builder::new()
            .prefix(".backstage-report-")
            .suffix(".partial")
            .tempfile_in(dir)
            .map_err(|cause| ArchiveError::Create {
                dir: dir.to_path_buf(),
                cause,
            })?;
        let stem = (1..=MAX_SAME_NAME)
            .map(|n| match n {
                1 => stem.to_string(),
                n => format!("{stem}-{n}"),
            })
            .find(|s| !dir.join(format!("{s}.tar.gz")).exists())
            .ok_or_else(|| ArchiveError::Create {
                dir: dir.to_path_buf(),
                cause: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{stem}.tar.gz and {MAX_SAME_NAME} more of that name exist"),
                ),
            })?;
        Ok(PendingArchive {
            file,
            path: dir.join(format!("{stem}.tar.gz")),
            stem,
        })
    }

    /// Where the archive will be.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The archive's name without `.tar.gz`: the folder its files go in.
    pub fn stem(&self) -> &str {
        &self.stem
    }

    /// Writes `entries` (paths under `folder`, contents), with modification time `mtime` (Unix
    /// seconds), and renames the file into place. Entries are written in the order given.
    pub fn finish(
        self,
        folder: &str,
        entries: &[(String, Vec<u8>)],
        mtime: u64,
    ) -> Result<PathBuf, ArchiveError> {
        let path = self.path.clone();
        let error = |cause: std::io::Error| ArchiveError::Write {
            path: path.clone(),
            cause,
        };
        let mut file = self.file;
        {
            let encoder = GzEncoder::new(file.as_file_mut(), Compression::default());
            let mut builder = tar::Builder::new(encoder);
            builder.mode(tar::HeaderMode::Deterministic);
            let mut directories: Vec<String> = vec![folder.to_string()];
            for (name, _) in entries {
                let mut parent = Path::new(name).parent();
                while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
                    let dir = format!("{folder}/{}", p.display());
                    if !directories.contains(&dir) {
                        directories.push(dir);
                    }
                    parent = p.parent();
                }
            }
            directories.sort();
            for dir in &directories {
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o700);
                header.set_size(0);
                header.set_mtime(mtime);
                builder
                    .append_data(&mut header, format!("{dir}/"), std::io::empty())
                    .map_err(error)?;
            }
            for (name, bytes) in entries {
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o600);
                header.set_size(bytes.len() as u64);
                header.set_mtime(mtime);
                builder
                    .append_data(&mut header, format!("{folder}/{name}"), bytes.as_slice())
                    .map_err(error)?;
            }
            let encoder = builder.into_inner().map_err(error)?;
            let inner = encoder.finish().map_err(error)?;
            inner.flush().map_err(error)?;
            inner.sync_all().map_err(error)?;
        }
        file.persist_noclobber(&path).map_err(|e| error(e.error))?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_the_entries_under_the_folder_with_mode_0600_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let pending = PendingArchive::create(dir.path(), "r").unwrap();
        let path = pending
            .finish(
                "r",
                &[
                    ("a.json".into(), b"{}".to_vec()),
                    ("logs/p/c.log".into(), b"line\n".to_vec()),
                ],
                1_700_000_000,
            )
            .unwrap();
        assert_eq!(path, dir.path().join("r.tar.gz"));
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["r.tar.gz"]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(
            std::fs::File::open(&path).unwrap(),
        ));
        let mut listed = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            listed.push((entry.path().unwrap().display().to_string(), text));
        }
        assert_eq!(
            listed,
            [
                ("r/".to_string(), String::new()),
                ("r/logs/".into(), String::new()),
                ("r/logs/p/".into(), String::new()),
                ("r/a.json".into(), "{}".into()),
                ("r/logs/p/c.log".into(), "line\n".into()),
            ]
        );
    }

    #[test]
    fn a_name_that_is_taken_gets_a_number() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.tar.gz"), "first").unwrap();
        let pending = PendingArchive::create(dir.path(), "r").unwrap();
        assert_eq!(pending.stem(), "r-2");
        let path = pending.finish("r-2", &[], 0).unwrap();
        assert_eq!(path, dir.path().join("r-2.tar.gz"));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("r.tar.gz")).unwrap(),
            "first"
        );
    }

    #[test]
    fn an_archive_dropped_before_it_is_finished_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let pending = PendingArchive::create(dir.path(), "r").unwrap();
        drop(pending);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_folder_that_is_not_there_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = PendingArchive::create(&dir.path().join("nope"), "r")
            .err()
            .unwrap();
        assert!(err.to_string().starts_with("cannot write the report into "));
    }
}
