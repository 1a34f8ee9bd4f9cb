//! Local directory backend (`file://`): the zero-setup default.
//!
//! Writes go to `<root>/.tmp/` and are renamed into place after an fsync of
//! the file, then the directory is fsynced: a crash leaves the old object,
//! the new one, or a temp file that `list_incomplete` reports for cleanup.

use super::{
    ByteStream, IncompleteUpload, ObjectMeta, Storage, StorageError, validate_key, validate_prefix,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TMP_DIR: &str = ".tmp";
const READ_CHUNK: usize = 1 << 20;

#[derive(Debug)]
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    /// Opens (creating if needed) a repository directory.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn open(root: PathBuf) -> Result<Self, StorageError> {
        std::fs::create_dir_all(root.join(TMP_DIR)).map_err(|e| StorageError::Permanent {
            op: "open",
            key: root.display().to_string(),
            message: format!("cannot create the repository directory: {e}"),
        })?;
        Ok(Self { root })
    }

    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }
}

fn io_err(op: &'static str, key: &str, e: std::io::Error) -> StorageError {
    if e.kind() == std::io::ErrorKind::NotFound {
        return StorageError::NotFound {
            key: key.to_string(),
        };
    }
    let transient = matches!(
        e.kind(),
        std::io::ErrorKind::Interrupted
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::WouldBlock
    );
    let message = e.to_string();
    if transient {
        StorageError::Transient {
            op,
            key: key.to_string(),
            message,
        }
    } else {
        StorageError::Permanent {
            op,
            key: key.to_string(),
            message,
        }
    }
}

fn meta_of(key: String, m: &std::fs::Metadata) -> ObjectMeta {
    let last_modified: DateTime<Utc> = m
        .modified()
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| Utc::now());
    ObjectMeta {
        key,
        size: m.len(),
        last_modified,
    }
}

/// Removes a temp file when an upload is dropped before it is renamed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[async_trait]
impl Storage for FsStorage {
    async fn put(&self, key: &str, mut body: ByteStream) -> Result<ObjectMeta, StorageError> {
        let dest = self.path(key)?;
        let tmp = self.root.join(TMP_DIR).join(format!(
            "{}.{}",
            key.replace('/', "%"),
            ulid::Ulid::generate()
        ));
        let mut guard = TempGuard(Some(tmp.clone()));
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| io_err("put", key, e))?;
        while let Some(chunk) = body.try_next().await.map_err(|e| match e {
            StorageError::Body { .. } => e,
            other => StorageError::Body {
                key: key.to_string(),
                message: other.to_string(),
            },
        })? {
            file.write_all(&chunk)
                .await
                .map_err(|e| io_err("put", key, e))?;
        }
        file.flush().await.map_err(|e| io_err("put", key, e))?;
        file.sync_all().await.map_err(|e| io_err("put", key, e))?;
        drop(file);
        let parent = dest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        let key_owned = key.to_string();
        let tmp2 = tmp.clone();
        let dest2 = dest.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&parent)?;
            std::fs::rename(&tmp2, &dest2)?;
            sync_dir(&parent)
        })
        .await
        .map_err(|e| StorageError::Permanent {
            op: "put",
            key: key_owned.clone(),
            message: e.to_string(),
        })?
        .map_err(|e| io_err("put", key, e))?;
        guard.0 = None;
        let m = tokio::fs::metadata(&dest)
            .await
            .map_err(|e| io_err("put", key, e))?;
        Ok(meta_of(key.to_string(), &m))
    }

    async fn get(&self, key: &str) -> Result<ByteStream, StorageError> {
        let path = self.path(key)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| io_err("get", key, e))?;
        let key = key.to_string();
        let stream = futures::stream::try_unfold((file, key), |(mut file, key)| async move {
            let mut buf = vec![0u8; READ_CHUNK];
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| io_err("get", &key, e))?;
            if n == 0 {
                return Ok(None);
            }
            buf.truncate(n);
            Ok(Some((bytes::Bytes::from(buf), (file, key))))
        });
        Ok(Box::pin(stream))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        let path = self.path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(meta_of(key.to_string(), &m))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("head", key, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        validate_prefix(prefix)?;
        let root = self.root.clone();
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            // Walk only the deepest directory the prefix names fully.
            let dir_part = match prefix.rfind('/') {
                Some(i) => &prefix[..i],
                None => "",
            };
            let start = if dir_part.is_empty() {
                root.clone()
            } else {
                root.join(dir_part)
            };
            let mut stack = vec![start];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_err("list", &prefix, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| io_err("list", &prefix, e))?;
                    let path = entry.path();
                    let rel = match path.strip_prefix(&root) {
                        Ok(r) => r.to_string_lossy().to_string(),
                        Err(_) => continue,
                    };
                    if rel == TMP_DIR || rel.starts_with(&format!("{TMP_DIR}/")) {
                        continue;
                    }
                    let m = entry.metadata().map_err(|e| io_err("list", &rel, e))?;
                    if m.is_dir() {
                        stack.push(path);
                    } else if rel.starts_with(&prefix) && validate_key(&rel).is_ok() {
                        out.push(meta_of(rel, &m));
                    }
                }
            }
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        })
        .await
        .map_err(|e| StorageError::Permanent {
            op: "list",
            key: String::new(),
            message: e.to_string(),
        })?
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("delete", key, e)),
        }
        // Tidy empty directories up to the root; failures here are harmless.
        let mut dir = path.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == self.root || std::fs::remove_dir(&d).is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        Ok(())
    }

    async fn list_incomplete(&self, prefix: &str) -> Result<Vec<IncompleteUpload>, StorageError> {
        validate_prefix(prefix)?;
        let mut out = Vec::new();
        let mut rd = match tokio::fs::read_dir(self.root.join(TMP_DIR)).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("list_incomplete", prefix, e)),
        };
        while let Some(entry) = rd
            .next_entry()
            .await
            .map_err(|e| io_err("list_incomplete", prefix, e))?
        {
            let name = entry.file_name().to_string_lossy().to_string();
            let Some((enc_key, _)) = name.rsplit_once('.') else {
                continue;
            };
            let key = enc_key.replace('%', "/");
            if !key.starts_with(prefix) {
                continue;
            }
            let initiated = entry
                .metadata()
                .await
                .ok()
                .and_then(|m| m.modified().ok())
                .map(DateTime::<Utc>::from);
            out.push(IncompleteUpload {
                key,
                upload_id: name,
                initiated,
            });
        }
        Ok(out)
    }

    async fn abort_incomplete(&self, upload: &IncompleteUpload) -> Result<(), StorageError> {
        if upload.upload_id.contains('/') || upload.upload_id.starts_with('.') {
            return Err(StorageError::InvalidKey {
                key: upload.upload_id.clone(),
                reason: "not a temp file name".into(),
            });
        }
        match tokio::fs::remove_file(self.root.join(TMP_DIR).join(&upload.upload_id)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("abort", &upload.key, e)),
        }
    }

    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }
}
