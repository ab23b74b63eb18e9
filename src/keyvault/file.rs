use super::store::{
    KeyMaterialUpdate, KeyVault, apply_material_update, check_alt_name_free, edit_alt_names,
    filter_matches,
};
use super::{Error, KeyDocument};
use crate::crypto::KeyId;
use bson::{Bson, Document};
use futures_util::stream::BoxStream;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A key vault in a local file: key documents as canonical Extended JSON,
/// either a JSON array or one document per line. The embedded default store.
///
/// Writes take an exclusive lock on `<path>.lock`, re-read the file, check
/// that the new key's id and alternate names are unique, write a temporary
/// file beside it, `fsync` it and rename it over the original, so a crash
/// leaves either the old or the new file, and concurrent writers never lose
/// each other's keys. Documents already in the file are written back exactly
/// as read (fields this version does not know included).
#[derive(Clone, Debug)]
pub struct FileKeyVault {
    path: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    Array,
    Lines,
}

impl FileKeyVault {
    /// A vault at `path`; the file need not exist yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileKeyVault { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, e: impl std::fmt::Display) -> Error {
        Error::Io {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    fn read_raw(&self) -> Result<(Vec<Document>, Layout), Error> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Vec::new(), Layout::Lines));
            }
            Err(e) => return Err(self.io(e)),
        };
        parse_key_documents(&text).map_err(|(line, reason)| Error::Parse {
            path: self.path.display().to_string(),
            line,
            reason,
        })
    }

    /// Every key document in the file, validated. A missing file is an empty vault.
    pub fn load(&self) -> Result<Vec<KeyDocument>, Error> {
        let (docs, _) = self.read_raw()?;
        docs.iter().map(KeyDocument::from_document).collect()
    }

    /// Adds a key document, refusing a duplicate id or alternate name.
    pub fn insert(&self, key: &KeyDocument) -> Result<(), Error> {
        self.update(|docs| {
            for d in docs.iter() {
                let existing = KeyDocument::from_document(d)?;
                if existing.id == key.id {
                    return Err(Error::DuplicateKeyId(key.id));
                }
                if let Some(n) = key
                    .key_alt_names
                    .iter()
                    .find(|n| existing.key_alt_names.contains(n))
                {
                    return Err(Error::DuplicateAltName(n.clone()));
                }
            }
            docs.push(key.to_document());
            Ok(())
        })
    }

    /// The key documents matching a MongoDB query filter (see
    /// [`KeyVault::find_matching`]; a subset of the query language).
    pub fn find_matching_sync(&self, filter: &Document) -> Result<Vec<KeyDocument>, Error> {
        let (docs, _) = self.read_raw()?;
        let mut out = Vec::new();
        for d in &docs {
            if filter_matches(d, filter)? {
                out.push(KeyDocument::from_document(d)?);
            }
        }
        Ok(out)
    }

    /// Deletes a key; returns how many documents were removed.
    pub fn delete(&self, id: KeyId) -> Result<u64, Error> {
        let mut removed = 0;
        self.update(|docs| {
            let mut keep = Vec::with_capacity(docs.len());
            for d in docs.drain(..) {
                if KeyDocument::from_document(&d)?.id == id {
                    removed += 1;
                } else {
                    keep.push(d);
                }
            }
            *docs = keep;
            Ok(())
        })?;
        Ok(removed)
    }

    /// Adds (`add`) or removes an alternate name; returns the document before.
    pub fn edit_alt_name(
        &self,
        id: KeyId,
        name: &str,
        add: bool,
    ) -> Result<Option<KeyDocument>, Error> {
        let mut before = None;
        self.update(|docs| {
            if add {
                check_alt_name_free(docs, id, name)?;
            }
            for d in docs.iter_mut() {
                let k = KeyDocument::from_document(d)?;
                if k.id == id {
                    edit_alt_names(d, name, add)?;
                    before = Some(k);
                    break;
                }
            }
            Ok(())
        })?;
        Ok(before)
    }

    /// Rewrites the master key and material of several keys in one atomic file write.
    pub fn update_materials(&self, updates: &[KeyMaterialUpdate]) -> Result<u64, Error> {
        let mut modified = 0;
        let now = bson::DateTime::now();
        self.update(|docs| {
            for d in docs.iter_mut() {
                let id = KeyDocument::from_document(d)?.id;
                if let Some(u) = updates.iter().find(|u| u.id == id) {
                    apply_material_update(d, u, now);
                    modified += 1;
                }
            }
            Ok(())
        })?;
        Ok(modified)
    }

    /// Runs a read-modify-write of the whole file under the lock.
    fn update(
        &self,
        change: impl FnOnce(&mut Vec<Document>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let lock_path = sibling(&self.path, ".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| self.io(e))?;
        lock.lock().map_err(|e| self.io(e))?;
        let (mut docs, layout) = self.read_raw()?;
        change(&mut docs)?;
        let text = render(&docs, layout);
        let tmp = sibling(&self.path, &format!(".tmp.{}", std::process::id()));
        let result = (|| {
            let mut f = create_private(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                // Make the rename itself durable. Best effort: not every
                // filesystem lets a directory be opened for sync.
                if let Ok(d) = File::open(dir) {
                    let _ = d.sync_all();
                }
            }
            Ok::<(), std::io::Error>(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(|e| self.io(e))
        // The lock is released when `lock` is dropped.
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn create_private(path: &Path) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

fn render(docs: &[Document], layout: Layout) -> String {
    let lines: Vec<String> = docs
        .iter()
        .map(|d| {
            Bson::Document(d.clone())
                .into_canonical_extjson()
                .to_string()
        })
        .collect();
    match layout {
        Layout::Lines => lines.iter().map(|l| format!("{l}\n")).collect(),
        Layout::Array => format!("[\n{}\n]\n", lines.join(",\n")),
    }
}

/// Parses key documents from Extended JSON text: a JSON array of documents,
/// or one document per line (blank lines skipped). Errors give a 1-based line.
pub(crate) fn parse_key_documents(text: &str) -> Result<(Vec<Document>, Layout), (usize, String)> {
    let to_doc = |v: serde_json::Value| -> Result<Document, String> {
        match Bson::try_from(v).map_err(|e| e.to_string())? {
            Bson::Document(d) => Ok(d),
            _ => Err("expected a JSON object".into()),
        }
    };
    if text.trim_start().starts_with('[') {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| (e.line(), e.to_string()))?;
        let serde_json::Value::Array(items) = value else {
            return Err((1, "expected a JSON array".into()));
        };
        let docs = items
            .into_iter()
            .map(|v| to_doc(v).map_err(|e| (1, e)))
            .collect::<Result<_, _>>()?;
        return Ok((docs, Layout::Array));
    }
    let mut docs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| (i + 1, e.to_string()))?;
        docs.push(to_doc(v).map_err(|e| (i + 1, e))?);
    }
    Ok((docs, Layout::Lines))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Io {
            path: "key vault file".into(),
            message: e.to_string(),
        })?
}

impl KeyVault for FileKeyVault {
    async fn find_keys(
        &self,
        ids: &[KeyId],
        alt_names: &[String],
    ) -> Result<Vec<KeyDocument>, Error> {
        let (vault, ids, names) = (self.clone(), ids.to_vec(), alt_names.to_vec());
        blocking(move || {
            Ok(vault
                .load()?
                .into_iter()
                .filter(|k| {
                    ids.contains(&k.id) || k.key_alt_names.iter().any(|n| names.contains(n))
                })
                .collect())
        })
        .await
    }

    async fn find_matching(
        &self,
        filter: Document,
    ) -> Result<BoxStream<'static, Result<KeyDocument, Error>>, Error> {
        let vault = self.clone();
        let keys = blocking(move || vault.find_matching_sync(&filter)).await?;
        Ok(Box::pin(futures_util::stream::iter(
            keys.into_iter().map(Ok),
        )))
    }

    async fn insert_key(&self, key: &KeyDocument) -> Result<(), Error> {
        let (vault, key) = (self.clone(), key.clone());
        blocking(move || vault.insert(&key)).await
    }

    async fn delete_key(&self, id: KeyId) -> Result<u64, Error> {
        let vault = self.clone();
        blocking(move || vault.delete(id)).await
    }

    async fn add_key_alt_name(&self, id: KeyId, name: &str) -> Result<Option<KeyDocument>, Error> {
        let (vault, name) = (self.clone(), name.to_owned());
        blocking(move || vault.edit_alt_name(id, &name, true)).await
    }

    async fn remove_key_alt_name(
        &self,
        id: KeyId,
        name: &str,
    ) -> Result<Option<KeyDocument>, Error> {
        let (vault, name) = (self.clone(), name.to_owned());
        blocking(move || vault.edit_alt_name(id, &name, false)).await
    }

    async fn update_key_materials(&self, updates: &[KeyMaterialUpdate]) -> Result<u64, Error> {
        let (vault, updates) = (self.clone(), updates.to_vec());
        blocking(move || vault.update_materials(&updates)).await
    }

    async fn ensure_indexes(&self) -> Result<(), Error> {
        Ok(())
    }
}
