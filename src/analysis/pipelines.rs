//! Aggregation pipelines: stages, the namespaces they name, and what
//! their documents look like after each stage.

use super::context::{Ctx, Error, Namespace, without_markings};
use super::shape::{Literals, Shape};
use super::{expressions, filters};
use crate::schema::FieldInfo;
use bson::{Bson, Document, doc};

/// Where a pipeline runs, which decides what it may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The pipeline of an `aggregate` command.
    Aggregate,
    /// A sub-pipeline over the same documents (`$facet`).
    Facet,
    /// A sub-pipeline over another collection (`$lookup`, `$unionWith`):
    /// markings cannot be made there.
    Foreign,
    /// A view definition, or a `$merge` `whenMatched` pipeline.
    Stored,
    /// A pipeline-style update.
    Update,
}

/// Stages that build documents csfle does not track (refused on documents
/// with encrypted fields, passed on plain ones).
const RESHAPING: &[&str] = &[
    "$group",
    "$bucket",
    "$bucketAuto",
    "$sortByCount",
    "$replaceRoot",
    "$replaceWith",
    "$redact",
    "$geoNear",
    "$setWindowFields",
    "$densify",
    "$fill",
    "$search",
    "$searchMeta",
    "$vectorSearch",
    "$listSessions",
    "$listLocalSessions",
    "$currentOp",
    "$listSearchIndexes",
];

/// Analyzes `stages` over documents of `shape`, which each stage updates:
/// on return it covers every collection whose documents may flow out of
/// the pipeline, at every nesting, and every `$documents` literal among
/// them. Returns the stages to send (with markings where a `$match`
/// needed them).
pub(crate) fn pipeline<'s>(
    cx: &mut Ctx<'_, 's>,
    shape: &mut Shape<'s>,
    stages: &[Bson],
    kind: Kind,
) -> Result<Vec<Bson>, Error> {
    let mut out = Vec::with_capacity(stages.len());
    for (i, stage) in stages.iter().enumerate() {
        let Bson::Document(stage) = stage else {
            return Err(Error::Malformed(
                "a pipeline stage must be a document".into(),
            ));
        };
        let mut entries = stage.iter();
        let (Some((op, arg)), None) = (entries.next(), entries.next()) else {
            return Err(Error::Malformed(
                "a pipeline stage must have exactly one field".into(),
            ));
        };
        let unsupported = |shape: &Shape<'_>| Error::UnsupportedStage {
            stage: op.clone(),
            ns: shape.ns().to_string(),
        };
        let new = match op.as_str() {
            "$changeStream" => {
                if i != 0 || kind != Kind::Aggregate {
                    return Err(Error::Malformed(
                        "$changeStream must be the first stage of an aggregate".into(),
                    ));
                }
                shape.change_events();
                None
            }
            "$match" => {
                let Bson::Document(f) = arg else {
                    return Err(Error::Malformed("$match needs a document".into()));
                };
                if shape.encrypted() {
                    Some(doc! {"$match": filters::filter(cx, shape, f)?})
                } else {
                    None
                }
            }
            "$limit" | "$skip" | "$sample" | "$indexStats" | "$collStats" | "$planCacheStats" => {
                None
            }
            "$count" => {
                shape.clear();
                None
            }
            "$documents" => {
                if i != 0 {
                    return Err(Error::Malformed(
                        "$documents must be the first stage".into(),
                    ));
                }
                if shape.encrypted() {
                    return Err(unsupported(shape));
                }
                shape.add_literals(Literals::of(arg)?);
                None
            }
            "$sort" => {
                filters::sort(shape, Some(arg))?;
                None
            }
            "$project" => {
                if shape.encrypted() {
                    let Bson::Document(p) = arg else {
                        return Err(Error::Malformed("$project needs a document".into()));
                    };
                    filters::projection(shape, p, "")?;
                }
                None
            }
            "$addFields" | "$set" => {
                if shape.encrypted() {
                    let Bson::Document(fields) = arg else {
                        return Err(Error::Malformed(format!("{op} needs a document")));
                    };
                    for (path, expr) in fields {
                        filters::assigned(shape, path, expr)?;
                    }
                }
                None
            }
            "$unset" => None,
            "$unwind" => {
                let path = match arg {
                    Bson::Document(d) => d.get("path").cloned().unwrap_or(Bson::Null),
                    other => other.clone(),
                };
                expressions::check(shape, &path)?;
                None
            }
            "$lookup" => lookup(cx, shape, arg)?,
            "$graphLookup" => {
                graph_lookup(cx, shape, arg)?;
                None
            }
            "$unionWith" => union_with(cx, shape, arg)?,
            "$facet" => {
                let Bson::Document(facets) = arg else {
                    return Err(Error::Malformed("$facet needs a document".into()));
                };
                let mut rewritten = Document::new();
                let mut outputs: Vec<(&str, Shape<'s>)> = Vec::with_capacity(facets.len());
                for (name, sub) in facets {
                    let Bson::Array(sub) = sub else {
                        return Err(Error::Malformed("a $facet needs pipelines".into()));
                    };
                    let mut sub_shape = shape.clone();
                    let sub = pipeline(cx, &mut sub_shape, sub, Kind::Facet)?;
                    rewritten.insert(name.clone(), sub);
                    outputs.push((name.as_str(), sub_shape));
                }
                // Each facet's output, joins and unions it made included,
                // goes under the facet's name.
                shape.facets(&outputs);
                Some(doc! {"$facet": rewritten})
            }
            "$merge" | "$out" => write_stage(cx, shape, op, arg)?,
            stage if RESHAPING.contains(&stage) => {
                if shape.encrypted() {
                    return Err(unsupported(shape));
                }
                None
            }
            other => {
                if shape.encrypted() {
                    return Err(unsupported(shape));
                }
                cx.unknown.push(format!("pipeline stage {other}"));
                None
            }
        };
        out.push(Bson::Document(new.unwrap_or_else(|| stage.clone())));
        // The literals, from this pipeline or absorbed from a
        // sub-pipeline, meet whatever collection this stage brought in.
        shape.check_literals()?;
    }
    Ok(out)
}

/// A pipeline-style update on documents of `shape` (plain: callers refuse
/// one on encrypted documents).
pub(crate) fn update_pipeline<'s>(
    cx: &mut Ctx<'_, 's>,
    shape: &Shape<'s>,
    stages: &[Bson],
) -> Result<Vec<Bson>, Error> {
    let mut after = shape.clone();
    let rewritten = pipeline(cx, &mut after, stages, Kind::Update)?;
    // What the pipeline produces is written back: it may not hold another
    // collection's encrypted documents (a stage that joins or mixes them
    // in), which nothing would encrypt.
    if after.carries_encrypted() {
        return Err(Error::PipelineUpdate(after.ns().to_string()));
    }
    Ok(rewritten)
}

/// The namespace of a `from` / `coll` / `into` value: a collection name in
/// the command's database, or `{db, coll}`.
fn namespace(cx: &Ctx<'_, '_>, value: &Bson, what: &str) -> Result<Namespace, Error> {
    match value {
        Bson::String(c) => Ok(Namespace::new(cx.db, c.clone())),
        Bson::Document(d) => match (d.get("db"), d.get("coll")) {
            (Some(Bson::String(db)), Some(Bson::String(c))) => Ok(Namespace::new(db, c)),
            (None, Some(Bson::String(c))) => Ok(Namespace::new(cx.db, c.clone())),
            _ => Err(Error::Malformed(format!("{what} needs a collection name"))),
        },
        _ => Err(Error::Malformed(format!("{what} needs a collection name"))),
    }
}

/// A sub-pipeline that reads no collection (it starts with `$documents`),
/// whose documents go under `prefix` of `outer`'s (a `$lookup`'s `as`) or
/// are mixed into them (`None`, a `$unionWith`). It is analysed like the
/// command's own pipeline: markings it makes (a `$match` after a
/// `$unionWith` of an encrypted collection) are kept in the stages
/// returned, the collections it reads and its literals are added to
/// `outer` (whose pipeline checks the literals against every collection
/// after each stage). Returns the rewritten stages and the shape of its
/// output.
fn documents_pipeline<'s>(
    cx: &mut Ctx<'_, 's>,
    outer: &mut Shape<'s>,
    stages: Option<&Bson>,
    prefix: Option<&str>,
) -> Result<(Vec<Bson>, Shape<'s>), Error> {
    let Some(Bson::Array(p)) = stages else {
        return Err(Error::Malformed(
            "a sub-pipeline without a collection needs a 'pipeline' array".into(),
        ));
    };
    let mut sub = Shape::of(outer.ns().clone(), None);
    let rewritten = pipeline(cx, &mut sub, p, Kind::Foreign)?;
    outer.absorb(prefix, &sub);
    Ok((rewritten, sub))
}

fn plain_field(shape: &Shape<'_>, path: &str, what: &str) -> Result<(), Error> {
    match shape.field(path)? {
        FieldInfo::Plain => Ok(()),
        _ => Err(Error::ForeignEncrypted {
            ns: shape.ns().to_string(),
            field: path.to_owned(),
            what: what.to_owned(),
        }),
    }
}

fn lookup<'s>(
    cx: &mut Ctx<'_, 's>,
    shape: &mut Shape<'s>,
    arg: &Bson,
) -> Result<Option<Document>, Error> {
    let Bson::Document(l) = arg else {
        return Err(Error::Malformed("$lookup needs a document".into()));
    };
    for k in l.keys() {
        if !matches!(
            k.as_str(),
            "from" | "localField" | "foreignField" | "let" | "pipeline" | "as"
        ) {
            cx.unknown.push(format!("$lookup.{k}"));
        }
    }
    let as_field = l
        .get_str("as")
        .map_err(|_| Error::Malformed("$lookup needs 'as'".into()))?;
    // What reads the local documents is checked whatever the join reads.
    match l.get("let") {
        None => {}
        Some(Bson::Document(vars)) => vars
            .values()
            .try_for_each(|v| expressions::check(shape, v))?,
        Some(_) => return Err(Error::Malformed("$lookup let must be a document".into())),
    }
    match l.get("localField") {
        None => {}
        Some(Bson::String(local)) => {
            plain_field(shape, local, "$lookup cannot join on an encrypted field")?
        }
        Some(_) => {
            return Err(Error::Malformed(
                "$lookup localField must be a string".into(),
            ));
        }
    }
    let Some(from) = l.get("from") else {
        // `$lookup` over `$documents`: no collection, only the pipeline,
        // whose output goes under `as`.
        let (rewritten, sub) = documents_pipeline(cx, shape, l.get("pipeline"), Some(as_field))?;
        if let Ok(f) = l.get_str("foreignField") {
            plain_field(&sub, f, "$lookup cannot join on an encrypted field")?;
        }
        let mut out = l.clone();
        out.insert("pipeline", rewritten);
        return Ok(Some(doc! {"$lookup": out}));
    };
    let ns = namespace(cx, from, "$lookup from")?;
    let schema = cx.schema(&ns)?;
    let mut foreign = Shape::of(ns.clone(), schema);
    if let Ok(f) = l.get_str("foreignField") {
        plain_field(&foreign, f, "$lookup cannot join on an encrypted field")?;
    }
    let mut out = None;
    if let Some(p) = l.get("pipeline") {
        let Bson::Array(p) = p else {
            return Err(Error::Malformed("$lookup pipeline must be an array".into()));
        };
        let rewritten = without_markings(
            cx,
            &ns,
            "a $lookup sub-pipeline cannot filter on another collection's encrypted field",
            |cx| pipeline(cx, &mut foreign, p, Kind::Foreign),
        )?;
        let mut l = l.clone();
        l.insert("pipeline", rewritten);
        out = Some(doc! {"$lookup": l});
    }
    // What lands under `as` is the sub-pipeline's output: `from`'s
    // documents and whatever the sub-pipeline joined or mixed in.
    shape.absorb(Some(as_field), &foreign);
    Ok(out)
}

fn graph_lookup<'s>(cx: &mut Ctx<'_, 's>, shape: &mut Shape<'s>, arg: &Bson) -> Result<(), Error> {
    let Bson::Document(g) = arg else {
        return Err(Error::Malformed("$graphLookup needs a document".into()));
    };
    for k in g.keys() {
        if !matches!(
            k.as_str(),
            "from"
                | "startWith"
                | "connectFromField"
                | "connectToField"
                | "as"
                | "maxDepth"
                | "depthField"
                | "restrictSearchWithMatch"
        ) {
            cx.unknown.push(format!("$graphLookup.{k}"));
        }
    }
    let from = g
        .get("from")
        .ok_or_else(|| Error::Malformed("$graphLookup needs 'from'".into()))?;
    let ns = namespace(cx, from, "$graphLookup from")?;
    let schema = cx.schema(&ns)?;
    let foreign = Shape::of(ns.clone(), schema);
    if let Some(start) = g.get("startWith") {
        expressions::check(shape, start)?;
    }
    for key in ["connectFromField", "connectToField"] {
        if let Ok(f) = g.get_str(key) {
            plain_field(
                &foreign,
                f,
                "$graphLookup cannot connect on an encrypted field",
            )?;
        }
    }
    if let Some(Bson::Document(m)) = g.get("restrictSearchWithMatch") {
        without_markings(
            cx,
            &ns,
            "$graphLookup cannot filter on another collection's encrypted field",
            |cx| {
                if foreign.encrypted() {
                    filters::filter(cx, &foreign, m)?;
                }
                Ok(())
            },
        )?;
    }
    let as_field = g
        .get_str("as")
        .map_err(|_| Error::Malformed("$graphLookup needs 'as'".into()))?;
    if let Some(s) = schema.filter(|s| s.has_encrypted_fields()) {
        shape.join(as_field, ns, s);
    }
    Ok(())
}

fn union_with<'s>(
    cx: &mut Ctx<'_, 's>,
    shape: &mut Shape<'s>,
    arg: &Bson,
) -> Result<Option<Document>, Error> {
    let (coll, stages) = match arg {
        Bson::String(_) => (arg.clone(), None),
        Bson::Document(u) => {
            for k in u.keys() {
                if !matches!(k.as_str(), "coll" | "pipeline" | "db") {
                    cx.unknown.push(format!("$unionWith.{k}"));
                }
            }
            match u.get("coll") {
                Some(c) => {
                    let mut target = Document::new();
                    if let Some(db) = u.get("db") {
                        target.insert("db", db.clone());
                    }
                    target.insert("coll", c.clone());
                    (Bson::Document(target), u.get("pipeline"))
                }
                // `{pipeline: [{$documents: …}, …]}`: no collection; its
                // documents are mixed into these.
                None => {
                    let (rewritten, _) = documents_pipeline(cx, shape, u.get("pipeline"), None)?;
                    let mut out = u.clone();
                    out.insert("pipeline", rewritten);
                    return Ok(Some(doc! {"$unionWith": out}));
                }
            }
        }
        _ => return Err(Error::Malformed("$unionWith needs a collection".into())),
    };
    let ns = namespace(cx, &coll, "$unionWith")?;
    let schema = cx.schema(&ns)?;
    let mut foreign = Shape::of(ns.clone(), schema);
    let mut out = None;
    if let Some(p) = stages {
        let Bson::Array(p) = p else {
            return Err(Error::Malformed(
                "$unionWith pipeline must be an array".into(),
            ));
        };
        let rewritten = without_markings(
            cx,
            &ns,
            "a $unionWith sub-pipeline cannot filter on another collection's encrypted field",
            |cx| pipeline(cx, &mut foreign, p, Kind::Foreign),
        )?;
        if let Bson::Document(u) = arg {
            let mut u = u.clone();
            u.insert("pipeline", rewritten);
            out = Some(doc! {"$unionWith": u});
        }
    }
    // What is mixed in is the sub-pipeline's output: `coll`'s documents
    // and whatever the sub-pipeline joined or mixed in.
    shape.absorb(None, &foreign);
    Ok(out)
}

/// `$merge` / `$out`: a pipeline cannot encrypt what it writes, so neither
/// the documents written nor the collection written may have encrypted
/// fields.
fn write_stage<'s>(
    cx: &mut Ctx<'_, 's>,
    shape: &Shape<'s>,
    op: &str,
    arg: &Bson,
) -> Result<Option<Document>, Error> {
    let target = match (op, arg) {
        ("$merge", Bson::Document(m)) => {
            for k in m.keys() {
                if !matches!(
                    k.as_str(),
                    "into" | "on" | "let" | "whenMatched" | "whenNotMatched"
                ) {
                    cx.unknown.push(format!("$merge.{k}"));
                }
            }
            let into = m
                .get("into")
                .ok_or_else(|| Error::Malformed("$merge needs 'into'".into()))?;
            namespace(cx, into, "$merge into")?
        }
        ("$out", Bson::Document(o)) => {
            let mut t = o.clone();
            t.remove("timeseries");
            namespace(cx, &Bson::Document(t), "$out")?
        }
        (_, other) => namespace(cx, other, op)?,
    };
    let schema = cx.schema(&target)?;
    if schema.is_some_and(|s| s.has_encrypted_fields()) {
        return Err(Error::PipelineWrite {
            stage: op.to_owned(),
            target: target.to_string(),
            encrypted: target.to_string(),
        });
    }
    if shape.carries_encrypted() {
        return Err(Error::PipelineWrite {
            stage: op.to_owned(),
            target: target.to_string(),
            encrypted: shape.ns().to_string(),
        });
    }
    if let Bson::Document(m) = arg
        && let Some(Bson::Array(p)) = m.get("whenMatched")
    {
        // Run by the server on each matched document: nothing in it can
        // be encrypted for, and what it names is analysed all the same.
        let mut matched = Shape::of(target.clone(), None);
        let rewritten = without_markings(
            cx,
            &target,
            "a $merge whenMatched pipeline cannot compare with or write encrypted fields",
            |cx| pipeline(cx, &mut matched, p, Kind::Stored),
        )?;
        // Its output is written into `target`: it may not hold documents
        // of a collection with encrypted fields that a stage in it brought in.
        if matched.carries_encrypted() {
            return Err(Error::PipelineWrite {
                stage: "$merge whenMatched".to_owned(),
                target: target.to_string(),
                encrypted: matched.ns().to_string(),
            });
        }
        let mut m = m.clone();
        m.insert("whenMatched", rewritten);
        return Ok(Some(doc! {"$merge": m}));
    }
    Ok(None)
}
