//! The shape of the documents a filter, expression or stage sees: which
//! paths are encrypted, and for which namespace.
//!
//! A plain command sees its collection's documents. A pipeline can change
//! that: `$lookup` / `$graphLookup` put another collection's documents under
//! a field, `$unionWith` mixes another collection's documents in (for
//! both, with whatever their sub-pipeline brought in), a change stream
//! wraps documents in events, `$facet` puts each facet's documents under
//! its name, `$group` builds documents csfle does not track. The shape
//! records each of those as a layer, and answers "what is this path?" for
//! all of them at once, refusing when the answer would be unsafe. It also
//! carries the `$documents` literals that flow on with the documents.

use super::context::{Error, Namespace};
use crate::schema::{EncryptionSchema, FieldInfo};
use bson::{Bson, Document};

#[derive(Clone, Debug)]
struct Layer<'s> {
    ns: Namespace,
    /// `None`: the documents themselves; `Some(p)`: documents found under
    /// the field `p` (a join's `as`, a change event's `fullDocument`).
    prefix: Option<String>,
    schema: &'s EncryptionSchema,
}

/// The encrypted layers of the documents at some point of a command.
#[derive(Clone, Debug)]
pub(crate) struct Shape<'s> {
    /// The command's own namespace (named in messages about plain shapes).
    own: Namespace,
    layers: Vec<Layer<'s>>,
    /// Set once a stage built documents whose encrypted paths csfle no
    /// longer tracks: the stage.
    untracked_after: Option<String>,
    /// Layers the documents no longer carry (after `$count`, the top level
    /// of change events), with the stage that removed them. A path they
    /// encrypt is refused rather than treated as plain: a value compared
    /// with it or written to it was meant for the encrypted field, and
    /// would go out in plaintext.
    ghosts: Vec<(Layer<'s>, &'static str)>,
    /// The literal documents of `$documents` stages that flow on with
    /// these documents, at any nesting (their paths re-rooted under a
    /// join's `as` or a facet's name): every collection met afterwards
    /// is checked against them, so a literal value never lands on a path
    /// a later collection encrypts.
    literals: Vec<Literals>,
}

impl<'s> Shape<'s> {
    /// The documents of `ns`, with `schema`.
    pub(crate) fn of(ns: Namespace, schema: Option<&'s EncryptionSchema>) -> Self {
        let mut shape = Shape {
            own: ns.clone(),
            layers: Vec::new(),
            untracked_after: None,
            ghosts: Vec::new(),
            literals: Vec::new(),
        };
        if let Some(s) = schema.filter(|s| s.has_encrypted_fields()) {
            shape.layers.push(Layer {
                ns,
                prefix: None,
                schema: s,
            });
        }
        shape
    }

    /// Whether any path may be encrypted, or named after an encrypted
    /// field that is gone (paths must then be analysed).
    pub(crate) fn encrypted(&self) -> bool {
        !self.layers.is_empty() || !self.ghosts.is_empty()
    }

    /// Whether the documents themselves may hold encrypted values (what a
    /// pipeline would write).
    pub(crate) fn carries_encrypted(&self) -> bool {
        !self.layers.is_empty()
    }

    /// The namespace to name in a message about this shape: the first with
    /// encrypted fields, else the command's own.
    pub(crate) fn ns(&self) -> &Namespace {
        self.layers
            .first()
            .or_else(|| self.ghosts.first().map(|(l, _)| l))
            .map_or(&self.own, |l| &l.ns)
    }

    /// Documents that no longer carry any collection's fields (`$count`):
    /// the paths they had stay refused by name.
    pub(crate) fn clear(&mut self) {
        let gone = std::mem::take(&mut self.layers);
        self.ghosts.extend(gone.into_iter().map(|l| (l, "$count")));
        self.untracked_after = None;
    }

    /// The documents a sub-pipeline produced (`sub`, its shape at the end:
    /// the collection it read, if any, and every collection and literal
    /// it brought in itself), put under `prefix` (a `$lookup`'s `as`, a
    /// facet's name) or mixed in (`None`, a `$unionWith`): its layers,
    /// ghosts and literals, re-rooted.
    pub(crate) fn absorb(&mut self, prefix: Option<&str>, sub: &Shape<'s>) {
        let rebase = |p: Option<&str>| -> Option<String> {
            match (prefix, p) {
                (None, p) => p.map(str::to_owned),
                (Some(a), None) => Some(a.to_owned()),
                (Some(a), Some(b)) => Some(format!("{a}.{b}")),
            }
        };
        if let Some(a) = prefix {
            // What is under `as` is replaced by the sub-pipeline's output.
            self.layers
                .retain(|l| l.prefix.as_deref().is_none_or(|p| !is_within(p, a)));
        }
        for l in &sub.layers {
            self.layers.push(Layer {
                ns: l.ns.clone(),
                prefix: rebase(l.prefix.as_deref()),
                schema: l.schema,
            });
        }
        for (l, stage) in &sub.ghosts {
            self.ghosts.push((
                Layer {
                    ns: l.ns.clone(),
                    prefix: rebase(l.prefix.as_deref()),
                    schema: l.schema,
                },
                *stage,
            ));
        }
        for l in &sub.literals {
            self.literals.push(l.rebased(prefix));
        }
        if sub.carries_encrypted()
            && self.untracked_after.is_none()
            && let Some(stage) = &sub.untracked_after
        {
            self.untracked_after = Some(stage.clone());
        }
    }

    /// The output of a `$facet`: one document whose field `name` holds the
    /// documents of that facet's sub-pipeline (`outputs`, each analysed
    /// from a copy of this shape). What the sub-pipelines brought in
    /// (joins, unions, literals) goes under the facet's name; what was at
    /// the top level is no longer there, and its encrypted paths stay
    /// refused by name. When any facet carries encrypted documents, every
    /// path is refused after it, as before: csfle does not follow
    /// encrypted documents through a facet.
    pub(crate) fn facets(&mut self, outputs: &[(&str, Shape<'s>)]) {
        let mut after = Shape {
            own: self.own.clone(),
            layers: Vec::new(),
            untracked_after: None,
            ghosts: std::mem::take(&mut self.ghosts),
            literals: Vec::new(),
        };
        after
            .ghosts
            .extend(self.layers.drain(..).map(|l| (l, "$facet")));
        for (name, sub) in outputs {
            after.absorb(Some(*name), sub);
        }
        if after.carries_encrypted() && after.untracked_after.is_none() {
            after.untracked_after = Some("$facet".to_owned());
        }
        *self = after;
    }

    /// The literal documents of a `$documents` stage, from now on.
    pub(crate) fn add_literals(&mut self, literals: Literals) {
        self.literals.push(literals);
    }

    /// Refuses when a literal document that flows on puts a value on a
    /// path one of the collections these documents hold encrypts.
    pub(crate) fn check_literals(&self) -> Result<(), Error> {
        self.literals.iter().try_for_each(|l| l.check(self))
    }

    /// Another collection's documents joined under `prefix`.
    pub(crate) fn join(&mut self, prefix: &str, ns: Namespace, schema: &'s EncryptionSchema) {
        // A join replaces whatever was at `prefix`.
        self.layers
            .retain(|l| l.prefix.as_deref().is_none_or(|p| !is_within(p, prefix)));
        self.layers.push(Layer {
            ns,
            prefix: Some(prefix.to_owned()),
            schema,
        });
    }

    /// Change events: the collection's documents under `fullDocument`,
    /// `fullDocumentBeforeChange` and `updateDescription.updatedFields`,
    /// its shard key (which may be an encrypted field) under
    /// `documentKey`, nothing at the top level (where its encrypted paths
    /// stay refused by name).
    pub(crate) fn change_events(&mut self) {
        let mut out = Vec::new();
        for l in self.layers.drain(..) {
            self.ghosts.push((l.clone(), "$changeStream"));
            for p in [
                "fullDocument",
                "fullDocumentBeforeChange",
                "updateDescription.updatedFields",
                "documentKey",
            ] {
                out.push(Layer {
                    ns: l.ns.clone(),
                    prefix: Some(p.to_owned()),
                    schema: l.schema,
                });
            }
        }
        self.layers = out;
    }

    /// What `path` is in these documents. Errors when the answer depends
    /// on a layer csfle cannot encrypt for, when the layers disagree, when
    /// a plain answer rests on a numeric or `$` segment below encrypted
    /// documents, or names a field the documents no longer carry.
    pub(crate) fn field(&self, path: &str) -> Result<FieldInfo<'s>, Error> {
        let info = self.layered_field(path)?;
        if matches!(info, FieldInfo::Plain) {
            self.check_segments(path)?;
            self.check_ghosts(path)?;
        }
        Ok(info)
    }

    /// A plain `path` must not reach below documents with encrypted fields
    /// through a numeric segment (an array index: a join's `as` is an
    /// array, and a document the schema describes may be stored as one)
    /// or a `$` segment, unless the schema names that segment.
    fn check_segments(&self, path: &str) -> Result<(), Error> {
        for l in &self.layers {
            let (rel, under_join) = match l.prefix.as_deref() {
                None => (path, false),
                Some(p) => match path.strip_prefix(p).and_then(|r| r.strip_prefix('.')) {
                    Some(rest) => (rest, true),
                    None => continue,
                },
            };
            let segments: Vec<&str> = rel.split('.').collect();
            for (i, seg) in segments.iter().enumerate() {
                let ambiguous = seg.starts_with('$')
                    || (!seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()));
                if !ambiguous {
                    continue;
                }
                let here = segments[..=i].join(".");
                let below_encrypted = if i == 0 {
                    // The top of a collection's documents is a document,
                    // not an array; the top of a join is an array of them.
                    under_join
                } else {
                    let parent = segments[..i].join(".");
                    matches!(l.schema.field(&parent), FieldInfo::ContainsEncrypted)
                        && !l.schema.is_listed(&here)
                };
                if below_encrypted {
                    return Err(Error::AmbiguousSegment(path.to_owned()));
                }
            }
        }
        Ok(())
    }

    /// A plain `path` must not be one a layer the documents no longer
    /// carry encrypts.
    fn check_ghosts(&self, path: &str) -> Result<(), Error> {
        for (l, stage) in &self.ghosts {
            let info = match l.prefix.as_deref() {
                None => l.schema.field(path),
                Some(p) if path == p || is_within(p, path) => FieldInfo::ContainsEncrypted,
                Some(p) => match path.strip_prefix(p).and_then(|r| r.strip_prefix('.')) {
                    Some(rest) => l.schema.field(rest),
                    None => continue,
                },
            };
            if !matches!(info, FieldInfo::Plain) {
                return Err(Error::ForeignEncrypted {
                    ns: l.ns.to_string(),
                    field: path.to_owned(),
                    what: format!(
                        "after {stage} the documents no longer hold the fields of '{}', and a value for one it encrypts would go out in plaintext",
                        l.ns
                    ),
                });
            }
        }
        Ok(())
    }

    /// What `path` is in the layers the documents carry.
    fn layered_field(&self, path: &str) -> Result<FieldInfo<'s>, Error> {
        if self.layers.is_empty() {
            return Ok(FieldInfo::Plain);
        }
        if let Some(stage) = &self.untracked_after {
            return Err(Error::UntrackedAccess {
                ns: self.ns().to_string(),
                what: format!("field '{path}' after {stage}"),
            });
        }
        // The innermost join that holds the path answers for it.
        let joined = self
            .layers
            .iter()
            .filter_map(|l| l.prefix.as_deref().map(|p| (l, p)))
            .filter(|(_, p)| is_within(path, p))
            .max_by_key(|(_, p)| p.len());
        if let Some((layer, prefix)) = joined {
            let info = if path == prefix {
                FieldInfo::ContainsEncrypted
            } else {
                layer.schema.field(&path[prefix.len() + 1..])
            };
            if let FieldInfo::Conflict = info {
                return Err(Error::SchemaConflict(path.to_owned()));
            }
            return match info {
                FieldInfo::Plain => Ok(FieldInfo::Plain),
                _ => Err(Error::ForeignEncrypted {
                    ns: layer.ns.to_string(),
                    field: path.to_owned(),
                    what: format!("documents of '{}' under '{prefix}'", layer.ns),
                }),
            };
        }
        // A path holding joined documents further down.
        if let Some(l) = self.layers.iter().find(|l| {
            l.prefix
                .as_deref()
                .is_some_and(|p| p.len() > path.len() && is_within(p, path))
        }) {
            return Err(Error::ForeignEncrypted {
                ns: l.ns.to_string(),
                field: path.to_owned(),
                what: format!(
                    "'{path}' holds documents of '{}' with encrypted fields",
                    l.ns
                ),
            });
        }
        let mut answer: Option<(FieldInfo<'s>, &Namespace)> = None;
        for l in self.layers.iter().filter(|l| l.prefix.is_none()) {
            let info = l.schema.field(path);
            if let FieldInfo::Conflict = info {
                return Err(Error::SchemaConflict(path.to_owned()));
            }
            match &answer {
                None => answer = Some((info, &l.ns)),
                Some((first, first_ns)) if *first != info => {
                    let ns = if matches!(info, FieldInfo::Plain) {
                        *first_ns
                    } else {
                        &l.ns
                    };
                    return Err(Error::ForeignEncrypted {
                        ns: ns.to_string(),
                        field: path.to_owned(),
                        what: "the collections of a $unionWith encrypt this field differently"
                            .into(),
                    });
                }
                Some(_) => {}
            }
        }
        Ok(answer.map_or(FieldInfo::Plain, |(i, _)| i))
    }
}

/// Whether `path` is `prefix` or below it.
fn is_within(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// The paths the literal documents of a `$documents` stage put values
/// on, checked against every collection the pipeline meets afterwards
/// (carried in the [`Shape`], through every sub-pipeline that absorbs
/// them).
#[derive(Clone, Debug)]
pub(crate) enum Literals {
    /// Every path of every literal document (intermediate ones too),
    /// from the root of the documents that carry them.
    Paths(Vec<String>),
    /// A computed `$documents` value: any path.
    Computed,
}

impl Literals {
    pub(crate) fn of(arg: &Bson) -> Result<Self, Error> {
        let Bson::Array(docs) = arg else {
            return Ok(Literals::Computed);
        };
        let mut paths = Vec::new();
        for d in docs {
            let Bson::Document(d) = d else {
                return Err(Error::Malformed("$documents needs documents".into()));
            };
            literal_paths(d, "", &mut paths);
        }
        Ok(Literals::Paths(paths))
    }

    /// The same literals, put under `prefix` (a `$lookup`'s `as`, a
    /// facet's name) or left where they are (`None`, a `$unionWith`).
    pub(crate) fn rebased(&self, prefix: Option<&str>) -> Self {
        match (self, prefix) {
            (Literals::Computed, _) => Literals::Computed,
            (Literals::Paths(paths), None) => Literals::Paths(paths.clone()),
            (Literals::Paths(paths), Some(a)) => {
                Literals::Paths(paths.iter().map(|p| format!("{a}.{p}")).collect())
            }
        }
    }

    /// Refuses a literal value on a path `shape` encrypts.
    pub(crate) fn check(&self, shape: &Shape<'_>) -> Result<(), Error> {
        if !shape.encrypted() {
            return Ok(());
        }
        let paths = match self {
            Literals::Computed => {
                return Err(Error::UntrackedAccess {
                    ns: shape.ns().to_string(),
                    what: "$documents with a computed value".into(),
                });
            }
            Literals::Paths(paths) => paths,
        };
        for p in paths {
            if !matches!(shape.field(p)?, FieldInfo::Plain) {
                return Err(Error::DocumentsLiteral {
                    ns: shape.ns().to_string(),
                    field: p.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Every path of `d` (below `prefix`), documents inside arrays included
/// (a path reaches through arrays). Bounded: the command's nesting was
/// checked before analysis.
fn literal_paths(d: &Document, prefix: &str, out: &mut Vec<String>) {
    for (k, v) in d {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        literal_value_paths(v, &path, out);
        out.push(path);
    }
}

fn literal_value_paths(v: &Bson, path: &str, out: &mut Vec<String>) {
    match v {
        Bson::Document(d) => literal_paths(d, path, out),
        Bson::Array(items) => {
            for item in items {
                literal_value_paths(item, path, out);
            }
        }
        _ => {}
    }
}
