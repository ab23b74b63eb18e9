//! A loopback MongoDB wire proxy that rewrites `listCollections` replies.
//!
//! The test server refuses `encrypt` in collection validators, so tests that
//! need server-side schemas put them into the replies instead: every OP_MSG
//! reply whose cursor namespace is `<db>.$cmd.listCollections` gets, for the
//! collections configured, the validator (or view type) the test sets.
//! Everything else is forwarded byte for byte. The proxy counts the
//! `listCollections` replies it rewrote, so tests can check caching.
//!
//! For Queryable Encryption, which the test server does not implement, it
//! can also put an `encryptedFields` into a collection's `listCollections`
//! entry, set the `maxWireVersion` of every `hello` reply, and answer
//! commands itself instead of forwarding them (a `create` with
//! `encryptedFields`, an `insert` with `encryptionInformation`, …). It
//! records every command sent through it, document sequences folded in,
//! so that tests can read what reached the "server".
//!
//! Acting for a Queryable Encryption server
//! ([`WireProxy::act_as_queryable_server`]), it also forwards commands
//! without the fields the test server refuses (`encryptionInformation`,
//! `create`'s `encryptedFields`), after recording them as sent, and lists
//! the `encryptedFields` of the collections created with them.
//!
//! It can also lose a reply: after the server executed a command, the
//! reply never reaches the client and the connection is cut (what a
//! retryable write must survive without writing twice). In chaos mode it
//! does that to every Nth reply to a data command, and holds back every
//! Mth for a latency spike.

#![allow(dead_code)]

use bson::{Bson, Document, doc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const OP_MSG: i32 = 2013;

/// What a collection looks like in `listCollections`.
#[derive(Clone, Debug)]
pub enum Listed {
    /// `options.validator` set to this document.
    Validator(Document),
    /// `type: "view"`.
    View,
    /// `options.encryptedFields` set to this document (a Queryable
    /// Encryption collection).
    EncryptedFields(Document),
}

/// A reply the proxy gives itself to a command (by name, and collection
/// when set), instead of forwarding it.
#[derive(Clone, Debug)]
pub struct Answer {
    pub command: String,
    pub collection: Option<String>,
    pub reply: Document,
}

#[derive(Default)]
pub struct Rules {
    /// By collection name.
    pub listed: Mutex<HashMap<String, Listed>>,
    pub list_collections: AtomicUsize,
    /// The name of every command sent through the proxy, in order.
    pub commands: Mutex<Vec<String>>,
    /// Commands whose next reply is lost (one each).
    pub lose_reply: Mutex<Vec<String>>,
    pub replies_lost: AtomicUsize,
    /// Chaos: every Nth data-command reply lost with its connection (0:
    /// off), every Mth delayed by `chaos_delay_ms`.
    pub chaos_cut_every: AtomicUsize,
    pub chaos_delay_every: AtomicUsize,
    pub chaos_delay_ms: AtomicUsize,
    pub chaos_seen: AtomicUsize,
    pub chaos_cuts: AtomicUsize,
    pub chaos_delays: AtomicUsize,
    /// Every command sent through the proxy, whole (OP_MSG document
    /// sequences folded in as arrays), in order.
    pub recorded: Mutex<Vec<Document>>,
    /// Commands the proxy answers itself.
    pub answers: Mutex<Vec<Answer>>,
    /// The `maxWireVersion` every `hello` reply gets, when set.
    pub max_wire_version: Mutex<Option<i32>>,
    /// Acting for a Queryable Encryption server: see
    /// [`WireProxy::act_as_queryable_server`].
    pub queryable_server: AtomicBool,
}

/// Commands chaos leaves alone: handshakes and monitoring (a cut there
/// is a different test).
const CHAOS_SPARED: &[&str] = &[
    "hello",
    "isMaster",
    "ismaster",
    "saslStart",
    "saslContinue",
    "ping",
    "buildInfo",
    "endSessions",
];

pub struct WireProxy {
    pub uri: String,
    pub rules: Arc<Rules>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WireProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WireProxy {
    /// A proxy to the server of `server_uri` (a `mongodb://host:port/...`
    /// URI); its own URI connects directly through it.
    pub async fn start(server_uri: &str) -> Self {
        let upstream = server_uri
            .trim_start_matches("mongodb://")
            .split(['/', '?'])
            .next()
            .unwrap()
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let rules = Arc::new(Rules::default());
        let r = rules.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, rules) = (upstream.clone(), r.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let _ = relay(client, server, rules).await;
                    }
                });
            }
        });
        WireProxy {
            uri: format!("mongodb://127.0.0.1:{port}/?directConnection=true"),
            rules,
            task,
        }
    }

    pub fn list(&self, coll: &str, listed: Listed) {
        self.rules
            .listed
            .lock()
            .unwrap()
            .insert(coll.to_owned(), listed);
    }

    /// Every command sent so far, whole.
    pub fn recorded(&self) -> Vec<Document> {
        self.rules.recorded.lock().unwrap().clone()
    }

    /// The commands sent so far named `command` on `collection`.
    pub fn recorded_on(&self, command: &str, collection: &str) -> Vec<Document> {
        self.recorded()
            .into_iter()
            .filter(|c| c.get_str(command) == Ok(collection))
            .collect()
    }

    /// Forgets the commands recorded so far.
    pub fn clear_recorded(&self) {
        self.rules.recorded.lock().unwrap().clear();
    }

    /// Answers every `command` (on `collection`, when given) with `reply`
    /// instead of forwarding it; a later answer for the same command and
    /// collection replaces an earlier one.
    pub fn answer(&self, command: &str, collection: Option<&str>, reply: Document) {
        let mut answers = self.rules.answers.lock().unwrap();
        answers.retain(|a| !(a.command == command && a.collection.as_deref() == collection));
        answers.push(Answer {
            command: command.to_owned(),
            collection: collection.map(str::to_owned),
            reply,
        });
    }

    /// Every `hello` reply says `maxWireVersion: version`.
    pub fn max_wire_version(&self, version: i32) {
        *self.rules.max_wire_version.lock().unwrap() = Some(version);
    }

    /// Makes the test server pass for a Queryable Encryption server, as
    /// far as commands go (it has no QE: it refuses `find` with an
    /// `encryptionInformation` and `create` with `encryptedFields` as
    /// unknown fields). From now on, every command is recorded as the
    /// client sent it, then forwarded without its `encryptionInformation`;
    /// a `create` with `encryptedFields` is forwarded without them and
    /// the collection is listed with them from then on (as
    /// [`Listed::EncryptedFields`]), and a `drop` forgets the listing. The
    /// payloads reach the server as they are: stored as binaries, matched
    /// by no query (what a QE server makes of them is not emulated).
    pub fn act_as_queryable_server(&self) {
        self.rules.queryable_server.store(true, Ordering::SeqCst);
    }

    /// The names of the commands sent so far.
    pub fn commands_seen(&self) -> Vec<String> {
        self.rules.commands.lock().unwrap().clone()
    }

    pub fn list_collections_seen(&self) -> usize {
        self.rules.list_collections.load(Ordering::SeqCst)
    }

    /// The next reply to `command` is lost and its connection cut.
    pub fn lose_next_reply_to(&self, command: &str) {
        self.rules
            .lose_reply
            .lock()
            .unwrap()
            .push(command.to_owned());
    }

    /// Chaos mode: every `cut_every`th reply to a data command is lost
    /// and its connection cut; every `delay_every`th waits `delay_ms`.
    pub fn chaos(&self, cut_every: usize, delay_every: usize, delay_ms: usize) {
        self.rules
            .chaos_delay_every
            .store(delay_every, Ordering::SeqCst);
        self.rules.chaos_delay_ms.store(delay_ms, Ordering::SeqCst);
        self.rules
            .chaos_cut_every
            .store(cut_every, Ordering::SeqCst);
    }

    /// Replies lost and replies delayed by chaos so far.
    pub fn chaos_done(&self) -> (usize, usize) {
        (
            self.rules.chaos_cuts.load(Ordering::SeqCst),
            self.rules.chaos_delays.load(Ordering::SeqCst),
        )
    }

    pub fn replies_lost(&self) -> usize {
        self.rules.replies_lost.load(Ordering::SeqCst)
    }
}

/// The command name of an OP_MSG request (its kind-0 section's first key).
fn command_name(body: &[u8]) -> Option<String> {
    if body.get(4) != Some(&0) {
        return None;
    }
    let doc = bson::RawDocument::from_bytes(body.get(5..)?).ok();
    let doc = match doc {
        Some(d) => d,
        // The section is followed by others: read its own length.
        None => {
            let len = i32::from_le_bytes(body.get(5..9)?.try_into().ok()?) as usize;
            bson::RawDocument::from_bytes(body.get(5..5 + len)?).ok()?
        }
    };
    let first = doc.iter().next()?.ok()?;
    Some(first.0.to_owned())
}

/// The whole command of an OP_MSG request: its kind-0 document with each
/// kind-1 document sequence added as an array under its identifier.
fn op_msg_command(body: &[u8]) -> Option<Document> {
    let flags = u32::from_le_bytes(body.get(0..4)?.try_into().ok()?);
    // A checksum (flag bit 0) ends the message.
    let end = if flags & 1 == 1 {
        body.len().checked_sub(4)?
    } else {
        body.len()
    };
    let mut at = 4;
    let mut command = None;
    let mut sequences: Vec<(String, Vec<Bson>)> = Vec::new();
    while at < end {
        let kind = *body.get(at)?;
        at += 1;
        let len = i32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?) as usize;
        let section = body.get(at..at + len)?;
        match kind {
            0 => command = Some(Document::from_reader(section).ok()?),
            1 => {
                let rest = section.get(4..)?;
                let nul = rest.iter().position(|&b| b == 0)?;
                let identifier = std::str::from_utf8(&rest[..nul]).ok()?.to_owned();
                let mut docs = Vec::new();
                let mut p = nul + 1;
                while p < rest.len() {
                    let dlen = i32::from_le_bytes(rest.get(p..p + 4)?.try_into().ok()?) as usize;
                    let d = Document::from_reader(rest.get(p..p + dlen)?).ok()?;
                    docs.push(Bson::Document(d));
                    p += dlen;
                }
                sequences.push((identifier, docs));
            }
            _ => return None,
        }
        at += len;
    }
    let mut command: Document = command?;
    for (identifier, docs) in sequences {
        command.insert(identifier, docs);
    }
    Some(command)
}

/// An OP_MSG reply to request `response_to` holding `reply`.
fn op_msg_reply(response_to: i32, reply: &Document) -> Vec<u8> {
    let mut doc_bytes = Vec::new();
    reply.to_writer(&mut doc_bytes).unwrap();
    let len = 16 + 4 + 1 + doc_bytes.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as i32).to_le_bytes());
    // The proxy's own request id: any value.
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&response_to.to_le_bytes());
    out.extend_from_slice(&OP_MSG.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.push(0);
    out.extend_from_slice(&doc_bytes);
    out
}

/// The answer the proxy gives `command` itself, if the test set one.
fn answer_for(rules: &Rules, command: &Document) -> Option<Document> {
    let (name, target) = command.iter().next()?;
    let target = target.as_str();
    rules
        .answers
        .lock()
        .unwrap()
        .iter()
        .find(|a| {
            a.command == *name && (a.collection.is_none() || a.collection.as_deref() == target)
        })
        .map(|a| a.reply.clone())
}

/// What the test server is sent instead of `command` while the proxy acts
/// for a Queryable Encryption server, when that differs: the command
/// without `encryptionInformation` (also inside `bulkWrite`'s `nsInfo`
/// entries), a `create` without `encryptedFields`
/// (which the collection's `listCollections` entry gets instead). A `drop`
/// forgets the `encryptedFields` listed for its collection.
fn as_the_test_server_takes_it(rules: &Rules, mut command: Document) -> Option<Document> {
    let (name, target) = {
        let (name, target) = command.iter().next()?;
        (name.clone(), target.as_str().map(str::to_owned))
    };
    let mut changed = command.remove("encryptionInformation").is_some();
    // `bulkWrite` carries it in each `nsInfo` entry.
    if name == "bulkWrite"
        && let Ok(entries) = command.get_array_mut("nsInfo")
    {
        for entry in entries.iter_mut() {
            if let Bson::Document(entry) = entry {
                changed |= entry.remove("encryptionInformation").is_some();
            }
        }
    }
    match (name.as_str(), target) {
        ("create", Some(coll)) => match command.remove("encryptedFields") {
            Some(Bson::Document(fields)) => {
                rules
                    .listed
                    .lock()
                    .unwrap()
                    .insert(coll, Listed::EncryptedFields(fields));
                changed = true;
            }
            // Not a document: sent as it is, for the server to refuse.
            Some(other) => {
                command.insert("encryptedFields", other);
            }
            None => {}
        },
        ("drop", Some(coll)) => {
            let mut listed = rules.listed.lock().unwrap();
            if matches!(listed.get(&coll), Some(Listed::EncryptedFields(_))) {
                listed.remove(&coll);
            }
        }
        _ => {}
    }
    changed.then_some(command)
}

async fn relay(client: TcpStream, server: TcpStream, rules: Arc<Rules>) -> std::io::Result<()> {
    let (mut cr, cw) = client.into_split();
    // Written by the relay of replies and by the proxy's own answers.
    let cw = Arc::new(tokio::sync::Mutex::new(cw));
    let (mut sr, mut sw) = server.into_split();
    // Requests by id, for the replies to lose.
    let names: Arc<Mutex<HashMap<i32, String>>> = Arc::default();
    let n = names.clone();
    let rules_up = rules.clone();
    let cw_up = cw.clone();
    let up = tokio::spawn(async move {
        loop {
            let mut header = [0u8; 16];
            cr.read_exact(&mut header).await?;
            let len = i32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
            let mut body = vec![0u8; len.saturating_sub(16)];
            cr.read_exact(&mut body).await?;
            let id = i32::from_le_bytes(header[4..8].try_into().unwrap());
            let op = i32::from_le_bytes(header[12..16].try_into().unwrap());
            if op == OP_MSG
                && let Some(name) = command_name(&body)
            {
                rules_up.commands.lock().unwrap().push(name.clone());
                if let Some(command) = op_msg_command(&body) {
                    rules_up.recorded.lock().unwrap().push(command.clone());
                    if let Some(reply) = answer_for(&rules_up, &command) {
                        let message = op_msg_reply(id, &reply);
                        cw_up.lock().await.write_all(&message).await?;
                        continue;
                    }
                    if rules_up.queryable_server.load(Ordering::SeqCst)
                        && let Some(plain) = as_the_test_server_takes_it(&rules_up, command)
                    {
                        n.lock().unwrap().insert(id, name);
                        // The same request id: the reply answers it.
                        let flags = u32::from_le_bytes(body[0..4].try_into().unwrap());
                        sw.write_all(&message_of(&header, flags, &plain)).await?;
                        continue;
                    }
                }
                n.lock().unwrap().insert(id, name);
            }
            sw.write_all(&header).await?;
            sw.write_all(&body).await?;
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    });
    loop {
        let mut header = [0u8; 16];
        if sr.read_exact(&mut header).await.is_err() {
            break;
        }
        let len = i32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len.saturating_sub(16)];
        sr.read_exact(&mut body).await?;
        let op = i32::from_le_bytes(header[12..16].try_into().unwrap());
        let response_to = i32::from_le_bytes(header[8..12].try_into().unwrap());
        let name = names.lock().unwrap().remove(&response_to);
        if let Some(name) = name {
            {
                let mut lose = rules.lose_reply.lock().unwrap();
                if let Some(i) = lose.iter().position(|c| *c == name) {
                    lose.remove(i);
                    rules.replies_lost.fetch_add(1, Ordering::SeqCst);
                    // The server executed it; the client never hears back.
                    break;
                }
            }
            let cut_every = rules.chaos_cut_every.load(Ordering::SeqCst);
            if cut_every > 0 && !CHAOS_SPARED.contains(&name.as_str()) {
                let seen = rules.chaos_seen.fetch_add(1, Ordering::SeqCst) + 1;
                if seen.is_multiple_of(cut_every) {
                    rules.chaos_cuts.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                let delay_every = rules.chaos_delay_every.load(Ordering::SeqCst);
                if delay_every > 0 && seen.is_multiple_of(delay_every) {
                    rules.chaos_delays.fetch_add(1, Ordering::SeqCst);
                    let ms = rules.chaos_delay_ms.load(Ordering::SeqCst) as u64;
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                }
            }
        }
        let message = if op == OP_MSG {
            rewrite(&header, &body, &rules).unwrap_or_else(|| [&header[..], &body[..]].concat())
        } else {
            [&header[..], &body[..]].concat()
        };
        cw.lock().await.write_all(&message).await?;
    }
    up.abort();
    Ok(())
}

/// The rewritten message, when it is a `listCollections` reply, or a
/// `hello` reply while a `maxWireVersion` is set.
fn rewrite(header: &[u8; 16], body: &[u8], rules: &Rules) -> Option<Vec<u8>> {
    let flags = u32::from_le_bytes(body[0..4].try_into().ok()?);
    // One kind-0 section (what servers send for replies).
    if body.get(4) != Some(&0) {
        return None;
    }
    let mut reply = Document::from_reader(&body[5..]).ok()?;
    // Hello replies are known by their content: streamed ones answer no
    // request id the proxy saw.
    let wire = *rules.max_wire_version.lock().unwrap();
    if let Some(version) = wire
        && reply.contains_key("maxWireVersion")
    {
        reply.insert("maxWireVersion", version);
        return Some(message_of(header, flags, &reply));
    }
    let cursor = reply.get_document_mut("cursor").ok()?;
    if !cursor
        .get_str("ns")
        .ok()?
        .ends_with(".$cmd.listCollections")
    {
        return None;
    }
    rules.list_collections.fetch_add(1, Ordering::SeqCst);
    let listed = rules.listed.lock().unwrap().clone();
    if let Ok(batch) = cursor.get_array_mut("firstBatch") {
        for entry in batch.iter_mut() {
            let Bson::Document(info) = entry else {
                continue;
            };
            let Ok(name) = info.get_str("name").map(str::to_owned) else {
                continue;
            };
            match listed.get(&name) {
                Some(Listed::Validator(v)) => {
                    let mut options = info.get_document("options").cloned().unwrap_or_default();
                    options.insert("validator", v.clone());
                    info.insert("options", options);
                }
                Some(Listed::View) => {
                    info.insert("type", "view");
                    info.insert("options", doc! {"viewOn": "somewhere", "pipeline": []});
                }
                Some(Listed::EncryptedFields(fields)) => {
                    let mut options = info.get_document("options").cloned().unwrap_or_default();
                    options.insert("encryptedFields", fields.clone());
                    info.insert("options", options);
                }
                None => {}
            }
        }
    }
    Some(message_of(header, flags, &reply))
}

/// A reply message with `reply` as its one section, the header's ids and
/// the flags kept (but for the checksum, which a rewrite invalidates).
fn message_of(header: &[u8; 16], flags: u32, reply: &Document) -> Vec<u8> {
    let mut doc_bytes = Vec::new();
    reply.to_writer(&mut doc_bytes).unwrap();
    // No checksum after rewriting (flag bit 0 cleared).
    let flags = flags & !1;
    let len = 16 + 4 + 1 + doc_bytes.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as i32).to_le_bytes());
    out.extend_from_slice(&header[4..16]);
    out.extend_from_slice(&flags.to_le_bytes());
    out.push(0);
    out.extend_from_slice(&doc_bytes);
    out
}
