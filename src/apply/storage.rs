//! [`SnapshotStorage`] on a file system (`file://` and `file:` locations, or plain paths):
//! the local runtime's storage, and any volume the agent shares with its clusters.

use std::path::PathBuf;

use super::runtime::{SnapshotStorage, StorageError};

/// Checkpoints and savepoints on a file system the agent can read.
#[derive(Debug, Clone, Default)]
pub struct FileSnapshotStorage;

const SUPPORTED: &str = "file://, file:, absolute paths";

fn path_of(location: &str) -> Result<PathBuf, StorageError> {
    let unsupported = || StorageError::Unsupported {
        location: location.to_string(),
        supported: SUPPORTED,
    };
    let rest = if let Some(r) = location.strip_prefix("file://") {
        r
    } else if let Some(r) = location.strip_prefix("file:") {
        r
    } else if location.starts_with('/') {
        location
    } else {
        return Err(unsupported());
    };
    if !rest.starts_with('/') {
        return Err(unsupported());
    }
    Ok(PathBuf::from(rest))
}

impl SnapshotStorage for FileSnapshotStorage {
    fn latest_checkpoint(
        &self,
        checkpoints_dir: &str,
        job_id: &str,
    ) -> Result<Option<String>, StorageError> {
        let base = path_of(checkpoints_dir)?.join(job_id);
        let entries = match std::fs::read_dir(&base) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StorageError::Io {
                    location: base.display().to_string(),
                    source,
                })
            }
        };
        let newest = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let n: u64 = name.strip_prefix("chk-")?.parse().ok()?;
                e.path().join("_metadata").exists().then_some((n, e.path()))
            })
            .max_by_key(|(n, _)| *n);
        Ok(newest.map(|(_, p)| format!("file:{}", p.display())))
    }

    fn exists(&self, location: &str) -> Result<bool, StorageError> {
        let path = path_of(location)?;
        Ok(path.join("_metadata").exists() || path.is_file())
    }

    fn delete(&self, location: &str) -> Result<(), StorageError> {
        let path = path_of(location)?;
        match std::fs::remove_dir_all(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StorageError::Io {
                location: location.to_string(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_complete_checkpoint_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let job = "00000000000000000000000000000001";
        for (n, complete) in [(3, true), (7, true), (9, false)] {
            let chk = dir.path().join(job).join(format!("chk-{n}"));
            std::fs::create_dir_all(&chk).expect("mkdir");
            if complete {
                std::fs::write(chk.join("_metadata"), b"x").expect("write");
            }
        }
        let storage = FileSnapshotStorage;
        let url = format!("file://{}", dir.path().display());
        let got = storage.latest_checkpoint(&url, job).expect("read");
        assert_eq!(
            got,
            Some(format!("file:{}/{job}/chk-7", dir.path().display()))
        );
        assert_eq!(storage.latest_checkpoint(&url, "ff").expect("read"), None);
        let loc = got.expect("some");
        assert!(storage.exists(&loc).expect("exists"));
        storage.delete(&loc).expect("delete");
        assert!(!storage.exists(&loc).expect("exists"));
        assert!(matches!(
            storage.exists("s3://bucket/x"),
            Err(StorageError::Unsupported { .. })
        ));
    }
}
