//! `--audit-log FILE` (or `$CSFLE_AUDIT_LOG`): one start and one end JSON
//! line per run of a command that decrypts for an operator.
//!
//! The start record is written and synced before anything is decrypted; if
//! it cannot be, the command exits 1 having decrypted nothing. The file is
//! created with mode 0600 and opened for appending only; it must be a
//! regular file (a FIFO or a device is refused, without blocking in
//! `open`). Each record is one `write` of a whole line, then synced: a
//! write that stops short (a full disk, `ulimit -f`) is the command's
//! error, and the cut line it leaves is found by the next run, which starts
//! on a fresh line and says so. Records hold who,
//! where, what (command, namespace, the filter's *shape*: field names and
//! operators, never values), how many documents, which data keys and KMS
//! providers; never a plaintext, a ciphertext or key material.

use crate::common::Failure;
use bson::{Bson, Document, doc};
use csfle::{AuditError, AuditSink, DecryptionEvent};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// An open audit log for one run of one command.
#[derive(Debug)]
pub(crate) struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
    run: String,
    command: &'static str,
    namespace: Option<String>,
    started: Instant,
    used: Mutex<Used>,
}

#[derive(Debug, Default)]
struct Used {
    keys: BTreeSet<String>,
    providers: BTreeSet<String>,
}

fn audit_failure(path: &Path, what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::Runtime(format!(
        "error: audit log {}: {what}: {e}; nothing was decrypted",
        path.display()
    ))
}

impl AuditLog {
    /// Opens (creating, mode 0600) `path` for appending and writes the
    /// start record, synced. `details` are the command's own fields (the
    /// filter shape, limits).
    pub(crate) fn start(
        path: &Path,
        command: &'static str,
        namespace: Option<&str>,
        details: Document,
    ) -> Result<Self, Failure> {
        use std::os::unix::fs::PermissionsExt;
        let file = open_regular(path)?;
        let meta = file
            .metadata()
            .map_err(|e| audit_failure(path, "cannot read its metadata", e.kind()))?;
        // Anyone who can write the trail can forge or erase it.
        if meta.permissions().mode() & 0o022 != 0 {
            return Err(audit_failure(
                path,
                "refused",
                format!(
                    "writable by others (mode {:o}); chmod 600 it",
                    meta.permissions().mode() & 0o777
                ),
            ));
        }
        // Its owner can rewrite the trail: it must be ours.
        // SAFETY: geteuid has no preconditions and cannot fail.
        #[allow(unsafe_code)]
        let euid = unsafe { libc::geteuid() };
        if std::os::unix::fs::MetadataExt::uid(&meta) != euid {
            return Err(audit_failure(
                path,
                "refused",
                format!(
                    "owned by uid {}, not by this user (uid {euid})",
                    std::os::unix::fs::MetadataExt::uid(&meta)
                ),
            ));
        }
        let log = AuditLog {
            path: path.to_owned(),
            file: Mutex::new(file),
            run: bson::Uuid::new().to_string(),
            command,
            namespace: namespace.map(str::to_owned),
            started: Instant::now(),
            used: Mutex::new(Used::default()),
        };
        let mut record = log.header("start");
        let (user, uid) = os_user();
        record.insert("user", user);
        record.insert("uid", i64::from(uid));
        record.insert("host", host_name());
        record.insert("pid", i64::from(std::process::id()));
        record.extend(details);
        log.append(record)
            .map_err(|e| audit_failure(path, "cannot write the start record", e))?;
        Ok(log)
    }

    fn header(&self, event: &str) -> Document {
        let mut d = doc! {
            "event": event,
            "run": &self.run,
            "time": bson::DateTime::now().try_to_rfc3339_string().unwrap_or_default(),
            "command": self.command,
        };
        if let Some(ns) = &self.namespace {
            d.insert("namespace", ns);
        }
        d
    }

    /// Appends `record` as one line in one `write`, under an exclusive
    /// lock on the file (runs sharing a log take turns), after a newline
    /// when the log's last byte is not one: a record cut by a crash, a
    /// full disk or a size limit (this run's or another's) is left on a
    /// line of its own, and the record says so (`after_cut_record`). The
    /// record is on disk whole, or this is an error. A short write is not
    /// continued: its first part is already a cut line that the next
    /// record steps over.
    fn append(&self, mut record: Document) -> std::io::Result<()> {
        let f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        f.lock()?;
        let result = (|| {
            let len = f.metadata()?.len();
            // Unknown (the file is write-only for us) counts as whole: a
            // record is then at worst glued to a cut one.
            let torn = ends_torn(&f, len).unwrap_or(false);
            let mut line = Vec::new();
            if torn {
                eprintln!(
                    "warning: audit log {}: its last record is cut short (a crash or a full disk); this record starts on a new line",
                    self.path.display()
                );
                record.insert("after_cut_record", true);
                line.push(b'\n');
            }
            line.extend_from_slice(relaxed_line(&record).as_bytes());
            line.push(b'\n');
            let written = loop {
                match (&*f).write(&line) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => break other?,
                }
            };
            if written != line.len() {
                return Err(std::io::Error::other(format!(
                    "only {written} of the record's {} bytes were written (disk full or file size limit?)",
                    line.len()
                )));
            }
            f.sync_data()
        })();
        // Closing the file would release the lock too; a failed unlock
        // leaves it to that.
        let _ = f.unlock();
        result
    }

    /// Writes the end record: the outcome, the documents returned, the
    /// data keys and KMS providers used.
    pub(crate) fn finish(&self, documents: u64, ok: bool) -> Result<(), Failure> {
        let used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let mut record = self.header("end");
        record.insert("outcome", if ok { "ok" } else { "failed" });
        record.insert("documents", i64::try_from(documents).unwrap_or(i64::MAX));
        record.insert(
            "data_keys",
            used.keys
                .iter()
                .cloned()
                .map(Bson::String)
                .collect::<Vec<_>>(),
        );
        record.insert(
            "kms_providers",
            used.providers
                .iter()
                .cloned()
                .map(Bson::String)
                .collect::<Vec<_>>(),
        );
        record.insert("seconds", self.started.elapsed().as_secs_f64());
        drop(used);
        self.append(record).map_err(|e| {
            Failure::Runtime(format!(
                "error: audit log {}: cannot write the end record of run {}: {e}; its start record, on disk, records this access",
                self.path.display(),
                self.run,
            ))
        })
    }
}

impl AuditSink for AuditLog {
    fn before_decrypt(&self, event: &DecryptionEvent<'_>) -> Result<(), AuditError> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        for k in event.keys {
            used.keys.insert(k.id.to_string());
            if let Some(p) = &k.provider {
                used.providers.insert(p.to_string());
            }
        }
        Ok(())
    }
}

/// Runs `body` between the audit log's start and end records (when there
/// is an audit log): the start record is on disk before `body` can
/// decrypt anything, the end record carries the outcome, the documents
/// `body` counted in `documents` (also when it failed part-way) and the
/// keys used.
pub(crate) async fn audited<T, F, Fut>(
    path: Option<&Path>,
    command: &'static str,
    namespace: Option<&str>,
    details: Document,
    documents: &AtomicU64,
    body: F,
) -> Result<T, Failure>
where
    F: FnOnce(Option<Arc<dyn AuditSink>>) -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let Some(path) = path else {
        return body(None).await;
    };
    let log = Arc::new(AuditLog::start(path, command, namespace, details)?);
    let result = body(Some(Arc::clone(&log) as Arc<dyn AuditSink>)).await;
    match (
        log.finish(documents.load(Ordering::Relaxed), result.is_ok()),
        result,
    ) {
        (Ok(()), result) => result,
        // The output was written; the missing end record is the failure.
        (Err(unrecorded), Ok(_)) => Err(unrecorded),
        // Both are said; the command's own failure decides the exit status.
        (Err(Failure::Runtime(m) | Failure::Usage(m)), Err(e)) => {
            eprintln!("{m}");
            Err(e)
        }
    }
}

/// Opens `path` (created with mode 0600) for appending, and for reading
/// its last byte when we may. `O_NONBLOCK` because opening a FIFO waits
/// for a reader for ever without it; the type is then checked on the open
/// descriptor (not the path, which could change in between) and only a
/// regular file is kept.
fn open_regular(path: &Path) -> Result<File, Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let open = |read: bool| {
        std::fs::OpenOptions::new()
            .read(read)
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(path)
    };
    let existed = std::fs::symlink_metadata(path).is_ok();
    let file = match open(true) {
        // A log we may append to but not read (mode 0200): no tail check.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => open(false),
        other => other,
    }
    .map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            // O_NOFOLLOW: a planted link could point the trail at any
            // file the user may write.
            audit_failure(
                path,
                "cannot open",
                "it is a symbolic link; name the file itself",
            )
        } else {
            audit_failure(path, "cannot open", e.kind())
        }
    })?;
    let meta = file
        .metadata()
        .map_err(|e| audit_failure(path, "cannot read its metadata", e.kind()))?;
    if !existed && meta.is_file() {
        // A new file's name is durable only once its directory is synced.
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| audit_failure(path, "cannot sync its directory", e.kind()))?;
    }
    if !meta.is_file() {
        return Err(audit_failure(path, "cannot open", "not a regular file"));
    }
    // Back to blocking writes (O_NONBLOCK means nothing for a regular file
    // on Linux, but a record must never be an EAGAIN away from lost).
    let fd = file.as_raw_fd();
    // SAFETY: fcntl with F_GETFL/F_SETFL and integer arguments on a
    // descriptor `file` owns and keeps open for the duration of the calls.
    #[allow(unsafe_code)]
    let cleared = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) == 0
    };
    if !cleared {
        return Err(audit_failure(
            path,
            "cannot open",
            std::io::Error::last_os_error().kind(),
        ));
    }
    Ok(file)
}

/// Whether the file's last byte (of `len`) is not a newline: a record was
/// cut by a crash, a full disk or a size limit. An error when the file
/// cannot be read.
fn ends_torn(file: &File, len: u64) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] != b'\n')
}

/// The records of an audit log and the lines that are not records (cut
/// by a crash or a full disk; numbered from 1), which a reader reports and
/// skips: one cut record never hides the ones after it.
#[cfg(test)]
fn read_records(text: &str) -> (Vec<serde_json::Value>, Vec<usize>) {
    let mut records = Vec::new();
    let mut cut = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) if v.is_object() => records.push(v),
            _ => cut.push(i + 1),
        }
    }
    (records, cut)
}

/// The environment variable that makes an audit log mandatory.
pub(crate) const AUDIT_REQUIRED_ENV: &str = "CSFLE_AUDIT_REQUIRED";

/// With `CSFLE_AUDIT_REQUIRED=1`, a command that decrypts for an operator
/// without an audit log (`--audit-log` or `$CSFLE_AUDIT_LOG`) is a usage
/// error (exit 2), found before anything is opened or connected. Unset,
/// empty or `0`: not required; any other value is refused rather than
/// guessed at.
pub(crate) fn require_audit_log(path: Option<&Path>) -> Result<(), Failure> {
    let value = std::env::var(AUDIT_REQUIRED_ENV);
    let required = match value.as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("" | "0") => false,
        Ok("1") => true,
        _ => {
            return Err(Failure::Usage(format!(
                "{AUDIT_REQUIRED_ENV} must be 1 or 0"
            )));
        }
    };
    if required && path.is_none() {
        return Err(Failure::Usage(format!(
            "{AUDIT_REQUIRED_ENV}=1: this command decrypts, so it needs --audit-log FILE (or $CSFLE_AUDIT_LOG)"
        )));
    }
    Ok(())
}

fn relaxed_line(d: &Document) -> String {
    Bson::Document(d.clone()).into_relaxed_extjson().to_string()
}

/// The uid of this process (the owner of its /proc entry) and the user
/// name the password database gives it (`$USER` is not trusted: anyone
/// can set it).
fn os_user() -> (String, u32) {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return ("unknown".into(), u32::MAX);
    };
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut parts = line.split(':');
                let name = parts.next()?;
                let id = parts.nth(1)?;
                (id.parse::<u32>().ok()? == uid).then(|| name.to_owned())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"));
    (name, uid)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The shape of a query filter: field names and operators kept, every
/// value replaced by `"?"`. `{"ssn": "123", "age": {"$gt": 30}}` →
/// `{"ssn": "?", "age": {"$gt": "?"}}`.
pub(crate) fn filter_shape(filter: &Document) -> Document {
    filter
        .iter()
        .map(|(k, v)| {
            let shaped = match (k.as_str(), v) {
                ("$and" | "$or" | "$nor", Bson::Array(items)) => Bson::Array(
                    items
                        .iter()
                        .map(|i| match i {
                            Bson::Document(d) => Bson::Document(filter_shape(d)),
                            _ => hidden(),
                        })
                        .collect(),
                ),
                (k, _) if k.starts_with('$') => hidden(),
                (_, v) => operand_shape(v),
            };
            (k.clone(), shaped)
        })
        .collect()
}

fn hidden() -> Bson {
    Bson::String("?".into())
}

/// The shape of a field's condition: an operator document keeps its
/// operators (and the shape of `$elemMatch`/`$not` inside); anything else
/// is a value.
fn operand_shape(v: &Bson) -> Bson {
    match v {
        Bson::Document(d) if !d.is_empty() && d.keys().all(|k| k.starts_with('$')) => {
            Bson::Document(
                d.iter()
                    .map(|(op, x)| {
                        let shaped = match (op.as_str(), x) {
                            ("$elemMatch", Bson::Document(inner)) => {
                                Bson::Document(filter_shape(inner))
                            }
                            ("$not", x) => operand_shape(x),
                            _ => hidden(),
                        };
                        (op.clone(), shaped)
                    })
                    .collect(),
            )
        }
        _ => hidden(),
    }
}

/// The field names of a projection or sort, without their values.
pub(crate) fn field_names(d: &Document) -> Bson {
    Bson::Array(d.keys().cloned().map(Bson::String).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure_text(f: Failure) -> String {
        match f {
            Failure::Runtime(m) | Failure::Usage(m) => m,
        }
    }

    #[test]
    fn a_cut_record_is_left_on_its_own_line_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        // A whole record, then one cut by a full disk.
        std::fs::write(
            &path,
            "{\"event\":\"start\",\"run\":\"a\"}\n{\"event\":\"end\",\"ru",
        )
        .unwrap();
        let log = AuditLog::start(&path, "decrypt", None, Document::new())
            .unwrap_or_else(|f| panic!("{}", failure_text(f)));
        if let Err(f) = log.finish(3, true) {
            panic!("{}", failure_text(f));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'), "{text}");
        let (records, cut) = read_records(&text);
        assert_eq!(cut, vec![2], "{text}");
        assert_eq!(records.len(), 3, "{text}");
        assert_eq!(records[1]["event"], "start");
        assert_eq!(records[1]["after_cut_record"], true);
        assert_eq!(records[2]["event"], "end");
        assert_eq!(records[2]["documents"], 3);

        // A whole log: nothing to report, no blank line added.
        let log = AuditLog::start(&path, "decrypt", None, Document::new())
            .unwrap_or_else(|f| panic!("{}", failure_text(f)));
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(read_records(&text).1, vec![2], "{text}");
        assert!(!text.contains("\n\n"), "{text}");
    }

    #[test]
    fn a_record_cut_by_another_run_between_ours_is_stepped_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::start(&path, "decrypt", None, Document::new())
            .unwrap_or_else(|f| panic!("{}", failure_text(f)));
        // Another run sharing the log is cut mid-record (its own size
        // limit) between our start and end records.
        let mut other = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        other.write_all(b"{\"event\":\"start\",\"ru").unwrap();
        drop(other);
        if let Err(f) = log.finish(1, true) {
            panic!("{}", failure_text(f));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let (records, cut) = read_records(&text);
        assert_eq!(cut, vec![2], "{text}");
        assert_eq!(records.len(), 2, "{text}");
        assert_eq!(records[1]["event"], "end");
        assert_eq!(records[1]["after_cut_record"], true);
    }

    #[test]
    fn a_symbolic_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("profile");
        std::fs::write(&target, "keep\n").unwrap();
        let link = dir.path().join("audit.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let Err(f) = AuditLog::start(&link, "decrypt", None, Document::new()) else {
            panic!("a symbolic link was followed");
        };
        let m = failure_text(f);
        assert!(m.contains("symbolic link"), "{m}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        // Without O_NONBLOCK this open would wait for a reader for ever.
        let Err(f) = AuditLog::start(&path, "decrypt", None, Document::new()) else {
            panic!("a FIFO was accepted as the audit log");
        };
        let m = failure_text(f);
        assert!(m.contains("not a regular file"), "{m}");
        assert!(m.contains("nothing was decrypted"), "{m}");
    }

    #[test]
    fn shapes_keep_names_and_operators_only() {
        let f = doc! {
            "ssn": "457-55-5462",
            "age": {"$gt": 30, "$lt": 99},
            "addr": {"city": "Paris"},
            "$or": [{"a": 1}, {"b": {"$in": ["x", "y"]}}],
            "tags": {"$elemMatch": {"k": "secret", "v": {"$ne": "s2"}}},
            "n": {"$not": {"$eq": "s3"}},
            "$expr": {"$eq": ["$a", "s4"]},
        };
        let shape = filter_shape(&f);
        assert_eq!(
            shape,
            doc! {
                "ssn": "?",
                "age": {"$gt": "?", "$lt": "?"},
                "addr": "?",
                "$or": [{"a": "?"}, {"b": {"$in": "?"}}],
                "tags": {"$elemMatch": {"k": "?", "v": {"$ne": "?"}}},
                "n": {"$not": {"$eq": "?"}},
                "$expr": "?",
            }
        );
        let text = relaxed_line(&shape);
        for secret in ["457-55", "Paris", "30", "secret", "s2", "s3", "s4", "\"x\""] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}
