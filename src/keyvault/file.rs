use super::store::{
    KeyMaterialUpdate, KeyVault, apply_material_update, check_alt_name_free, edit_alt_names,
    filter_matches,
};
use super::{Error, KeyDocument};
use crate::key::KeyId;
use bson::{Bson, Document};
use futures_util::future::BoxFuture;
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
///
/// The path is canonicalised once, when the vault is made. The lock and
/// temporary files are opened with `O_NOFOLLOW` and mode 0600, temporary
/// files also with `O_EXCL` and a random suffix, so a link planted beside
/// the vault cannot redirect a write. A writer killed mid-write leaves its
/// temporary file (a full copy of the wrapped keys) behind; the next writer
/// removes every such file under the lock, so copies of deleted or rewrapped
/// keys do not survive.
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
    /// A vault at `path`; the file need not exist yet. The path is
    /// resolved now (links followed, made absolute) and used as resolved
    /// from then on.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileKeyVault {
            path: canonical(path.into()),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::Io {
            path: self.path.display().to_string(),
            source: std::sync::Arc::new(e),
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
        docs.iter()
            .map(|d| Ok(KeyDocument::from_document(d)?))
            .collect()
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
        let lock = open_private(&lock_path, false).map_err(|e| self.io(e))?;
        lock.lock().map_err(|e| self.io(e))?;
        self.remove_stale_temporaries().map_err(|e| self.io(e))?;
        let (mut docs, layout) = self.read_raw()?;
        change(&mut docs)?;
        let text = zeroize::Zeroizing::new(render(&docs, layout));
        let mut suffix = [0u8; 8];
        crate::crypto::fill_random(&mut suffix).map_err(|e| self.io(std::io::Error::other(e)))?;
        let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let tmp = sibling(&self.path, &format!("{TMP_MARK}{suffix}"));
        let result = (|| {
            let mut f = open_private(&tmp, true)?;
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

    /// Removes `<vault>.tmp.*` files. Called with the lock held: temporary
    /// files are only made under it, so any that exist belong to writers
    /// that died.
    fn remove_stale_temporaries(&self) -> std::io::Result<()> {
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return Ok(());
        };
        let mut prefix = name.to_owned();
        prefix.push(TMP_MARK);
        let prefix = prefix.as_encoded_bytes();
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_name().as_encoded_bytes().starts_with(prefix) {
                match fs::remove_file(entry.path()) {
                    Ok(()) => tracing::debug!("removed a stale key vault temporary file"),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

/// What marks a temporary file of the vault `<vault>`: `<vault>.tmp.<random>`.
const TMP_MARK: &str = ".tmp.";

/// `path` made absolute with links resolved; for a file that does not exist
/// yet, its directory resolved and the name kept.
fn canonical(path: PathBuf) -> PathBuf {
    if let Ok(p) = fs::canonicalize(&path) {
        return p;
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    match (fs::canonicalize(&dir), path.file_name()) {
        (Ok(d), Some(name)) => d.join(name),
        _ => path,
    }
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Opens `path` for writing, mode 0600, never through a symbolic link;
/// `new` also refuses an existing file (`O_EXCL`).
fn open_private(path: &Path, new: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true);
    if new {
        o.create_new(true);
    } else {
        o.create(true).truncate(false);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600).custom_flags(libc::O_NOFOLLOW);
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
    // Errors say where and what kind of problem, never the content: a key
    // vault holds wrapped keys, and a malformed value may be key material.
    let to_doc = |v: serde_json::Value| -> Result<Document, String> {
        match Bson::try_from(v).map_err(|e| crate::ejson::describe_extjson_error(&e))? {
            Bson::Document(d) => Ok(d),
            _ => Err("expected a JSON object".into()),
        }
    };
    let json_error = |e: serde_json::Error| crate::ejson::describe_json_error(&e);
    if text.trim_start().starts_with('[') {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| (e.line(), json_error(e)))?;
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
            serde_json::from_str(line).map_err(|e| (i + 1, json_error(e)))?;
        docs.push(to_doc(v).map_err(|e| (i + 1, e))?);
    }
    Ok((docs, Layout::Lines))
}

/// Runs file I/O off the async workers when there is a Tokio runtime (the
/// `driver` feature); without one (the pure core), in place.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    #[cfg(feature = "driver")]
    if tokio::runtime::Handle::try_current().is_ok() {
        return tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Error::Io {
                path: "key vault file".into(),
                source: std::sync::Arc::new(std::io::Error::other(e)),
            })?;
    }
    f()
}

impl KeyVault for FileKeyVault {
    fn find_keys<'a>(
        &'a self,
        ids: &'a [KeyId],
        alt_names: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<KeyDocument>, Error>> {
        Box::pin(async move {
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
        })
    }

    fn find_matching<'a>(
        &'a self,
        filter: Document,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Result<KeyDocument, Error>>, Error>> {
        Box::pin(async move {
            let vault = self.clone();
            let keys = blocking(move || vault.find_matching_sync(&filter)).await?;
            let keys: BoxStream<'static, _> =
                Box::pin(futures_util::stream::iter(keys.into_iter().map(Ok)));
            Ok(keys)
        })
    }

    fn insert_key<'a>(&'a self, key: &'a KeyDocument) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let (vault, key) = (self.clone(), key.clone());
            blocking(move || vault.insert(&key)).await
        })
    }

    fn delete_key<'a>(&'a self, id: KeyId) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(async move {
            let vault = self.clone();
            blocking(move || vault.delete(id)).await
        })
    }

    fn add_key_alt_name<'a>(
        &'a self,
        id: KeyId,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<KeyDocument>, Error>> {
        Box::pin(async move {
            let (vault, name) = (self.clone(), name.to_owned());
            blocking(move || vault.edit_alt_name(id, &name, true)).await
        })
    }

    fn remove_key_alt_name<'a>(
        &'a self,
        id: KeyId,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<KeyDocument>, Error>> {
        Box::pin(async move {
            let (vault, name) = (self.clone(), name.to_owned());
            blocking(move || vault.edit_alt_name(id, &name, false)).await
        })
    }

    fn update_key_materials<'a>(
        &'a self,
        updates: &'a [KeyMaterialUpdate],
    ) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(async move {
            let (vault, updates) = (self.clone(), updates.to_vec());
            blocking(move || vault.update_materials(&updates)).await
        })
    }

    fn ensure_indexes<'a>(&'a self) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { Ok(()) })
    }
}
