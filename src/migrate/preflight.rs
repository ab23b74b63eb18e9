//! The checks before the first document is touched. A cause that is global
//! (a wrong master key, a missing or unreadable key, a garbage vault, an
//! unusable namespace, a plan every sampled document fails) is one error, exit 2
//! in the CLI, with nothing written: never one failure record per
//! document.

use super::run::RunState;
use super::{Error, Namespace};
use crate::key::KeyRef;
use crate::schema::EncryptKey;
use bson::{Document, doc};
use futures_util::TryStreamExt;
use mongodb::results::{CollectionSpecification, CollectionType};

/// Documents dry-run through the plan before the run.
const SAMPLE: i64 = 100;

/// How often, and after how long, a source the listing did not show is
/// looked for again before the run is refused.
const SOURCE_RELISTS: usize = 2;
const RELIST_AFTER: std::time::Duration = std::time::Duration::from_millis(50);

fn refused(reason: impl Into<String>) -> Error {
    Error::Preflight {
        reason: reason.into(),
    }
}

impl RunState {
    /// Namespaces, keys, then a sample of documents.
    pub(super) async fn preflight(
        &self,
        source: &Namespace,
        target: &Namespace,
        checkpoints: &Namespace,
    ) -> Result<(), Error> {
        self.check_namespaces(source, target, checkpoints).await?;
        self.check_keys().await?;
        self.check_sample().await
    }

    /// What `listCollections` says `ns` is: `None` when it does not exist.
    async fn collection_type(&self, ns: &Namespace) -> Result<Option<String>, Error> {
        let db = self.client.database(&ns.db);
        let specs: Vec<CollectionSpecification> = self
            .retrying(|| async {
                Ok(db
                    .list_collections()
                    .filter(doc! {"name": &ns.coll})
                    .await?
                    .try_collect()
                    .await?)
            })
            .await?;
        Ok(specs.first().map(|s| match s.collection_type {
            CollectionType::Collection => "collection".to_owned(),
            CollectionType::View => "view".to_owned(),
            CollectionType::Timeseries => "time-series collection".to_owned(),
            _ => "collection of an unknown type".to_owned(),
        }))
    }

    async fn check_namespaces(
        &self,
        source: &Namespace,
        target: &Namespace,
        checkpoints: &Namespace,
    ) -> Result<(), Error> {
        if checkpoints == source || (!self.options.dry_run && checkpoints == target) {
            return Err(refused(format!(
                "the checkpoint namespace {checkpoints} is a collection being migrated"
            )));
        }
        let mut source_type = self.collection_type(source).await?;
        // Looked at again before refusing: a listing taken while another
        // process creates a collection in the same database (a concurrent
        // start creating the checkpoint collection) is not guaranteed to
        // show every collection on every server.
        for _ in 0..SOURCE_RELISTS {
            if source_type.is_some() {
                break;
            }
            tokio::time::sleep(RELIST_AFTER).await;
            source_type = self.collection_type(source).await?;
        }
        match source_type.as_deref() {
            None => {
                return Err(refused(format!(
                    "the source collection {source} does not exist"
                )));
            }
            Some("collection") => {}
            Some(other) => {
                return Err(refused(format!(
                    "the source {source} is a {other}, not a collection"
                )));
            }
        }
        let mut others = vec![("checkpoint namespace", checkpoints)];
        if target != source {
            others.push(("target", target));
        }
        for (what, ns) in others {
            if let Some(kind) = self.collection_type(ns).await?
                && kind != "collection"
            {
                return Err(refused(format!(
                    "the {what} {ns} is a {kind}, not a collection"
                )));
            }
        }
        Ok(())
    }

    /// Every key the schema names by id is fetched and unwrapped (through
    /// the KMS); with none, the vault is read once.
    async fn check_keys(&self) -> Result<(), Error> {
        let mut refs: Vec<KeyRef> = Vec::new();
        for spec in self.plan.encryption_schema().encrypt_specs() {
            if let EncryptKey::Id(id) = &spec.key {
                let r = KeyRef::Id(*id);
                if !refs.contains(&r) {
                    refs.push(r);
                }
            }
        }
        let keys = |e: crate::Error| Error::Keys(Box::new(e));
        let outcome = if refs.is_empty() {
            self.retrying(|| async {
                let mut keys_found = self.encryption.get_keys().await.map_err(keys)?;
                keys_found.try_next().await.map_err(keys)?;
                Ok(())
            })
            .await
        } else {
            self.retrying(|| async {
                self.encryption.resolved(&refs).await.map_err(keys)?;
                Ok(())
            })
            .await
        };
        outcome.map_err(|e| match e {
            Error::Keys(e) => refused(format!("the plan's keys: {e}")),
            other => other,
        })
    }

    /// The first documents, through the plan without writing: when every
    /// one of them fails, the plan is wrong for this collection (a type,
    /// a key pointer), not the documents. Unless a run of the job is going
    /// on by then (checked after the sample was read, so any document a
    /// run had changed in it is covered): its starter judged the collection
    /// before anything was written, and a sample read mid-run depends on
    /// the run (on some servers documents move on in the storage's order
    /// when written, those the plan refuses stay first, so a healthy run
    /// can leave a sample of refusals). A process joining it is never
    /// refused for that; the run reports such documents one by one.
    async fn check_sample(&self) -> Result<(), Error> {
        let sample: Vec<Document> = self
            .retrying(|| async {
                Ok(self
                    .source
                    .find(doc! {})
                    .limit(SAMPLE)
                    .await?
                    .try_collect()
                    .await?)
            })
            .await?;
        let n = sample.len();
        if n == 0 {
            return Ok(());
        }
        // Retried like every read of the run: a key vault cut off for a
        // moment is not a wrong plan.
        let prepared = self
            .retrying(|| self.prepare(sample.clone()))
            .await
            .map_err(|e| match e {
                Error::Keys(e) => refused(format!("the sampled documents' keys: {e}")),
                other => other,
            })?;
        let reasons: Vec<&str> = prepared
            .iter()
            .filter_map(|(_, change)| change.as_ref().err().map(String::as_str))
            .collect();
        if reasons.len() == n {
            // The most frequent reason names the problem.
            let mut counts: Vec<(&str, usize)> = Vec::new();
            for r in &reasons {
                match counts.iter_mut().find(|(c, _)| c == r) {
                    Some((_, k)) => *k += 1,
                    None => counts.push((r, 1)),
                }
            }
            counts.sort_by_key(|c| std::cmp::Reverse(c.1));
            let (reason, k) = counts[0];
            if let Some(c) = &self.checkpoints
                && self.retrying(|| c.is_running()).await?
            {
                tracing::info!(
                    reason,
                    "the sampled documents fail the plan, but a run of the job is going on: joining it"
                );
                return Ok(());
            }
            return Err(refused(format!(
                "each of the first {n} documents fails the plan ({k} of them: {reason})"
            )));
        }
        Ok(())
    }
}
