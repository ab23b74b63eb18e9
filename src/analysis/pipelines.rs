//! Aggregation pipelines: stages, the namespaces they name, and what
//! their documents look like after each stage.

use super::commands::Ctx;
use super::shape::Shape;
use super::{Error, Namespace, expressions, filters};
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
    "$documents",
];

/// Analyzes `stages` over documents of `shape`, which each stage updates.
/// Returns the stages to send (with markings where a `$match` needed them).
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
            "$lookup" => {
                lookup(cx, shape, arg)?;
                None
            }
            "$graphLookup" => {
                graph_lookup(cx, shape, arg)?;
                None
            }
            "$unionWith" => {
                union_with(cx, shape, arg)?;
                None
            }
            "$facet" => {
                let Bson::Document(facets) = arg else {
                    return Err(Error::Malformed("$facet needs a document".into()));
                };
                let mut rewritten = Document::new();
                for (name, sub) in facets {
                    let Bson::Array(sub) = sub else {
                        return Err(Error::Malformed("a $facet needs pipelines".into()));
                    };
                    let mut sub_shape = shape.clone();
                    let sub = pipeline(cx, &mut sub_shape, sub, Kind::Facet)?;
                    rewritten.insert(name.clone(), sub);
                }
                shape.untrack("$facet");
                Some(doc! {"$facet": rewritten})
            }
            "$merge" | "$out" => {
                write_stage(cx, shape, op, arg)?;
                None
            }
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
    pipeline(cx, &mut shape.clone(), stages, Kind::Update)
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

/// Runs `f` with markings refused: the documents are another collection's,
/// or the pipeline is stored on the server.
pub(crate) fn without_markings<'s, T>(
    cx: &mut Ctx<'_, 's>,
    ns: &Namespace,
    what: &'static str,
    f: impl FnOnce(&mut Ctx<'_, 's>) -> Result<T, Error>,
) -> Result<T, Error> {
    let before = cx.no_markings.replace((ns.clone(), what));
    let r = f(cx);
    cx.no_markings = before;
    r
}

/// A sub-pipeline that reads no collection (it starts with `$documents`):
/// still analysed for the namespaces its later stages name.
fn documents_pipeline<'s>(
    cx: &mut Ctx<'_, 's>,
    shape: &Shape<'s>,
    stages: Option<&Bson>,
) -> Result<(), Error> {
    if let Some(Bson::Array(p)) = stages {
        pipeline(
            cx,
            &mut Shape::of(shape.ns().clone(), None),
            p,
            Kind::Foreign,
        )?;
    }
    Ok(())
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

fn lookup<'s>(cx: &mut Ctx<'_, 's>, shape: &mut Shape<'s>, arg: &Bson) -> Result<(), Error> {
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
    let Some(from) = l.get("from") else {
        // `$lookup` over `$documents`: no collection, only the pipeline.
        return documents_pipeline(cx, shape, l.get("pipeline"));
    };
    let ns = namespace(cx, from, "$lookup from")?;
    let schema = cx.schema(&ns)?;
    let foreign = Shape::of(ns.clone(), schema);
    if let Ok(local) = l.get_str("localField") {
        plain_field(shape, local, "$lookup cannot join on an encrypted field")?;
    }
    if let Ok(f) = l.get_str("foreignField") {
        plain_field(&foreign, f, "$lookup cannot join on an encrypted field")?;
    }
    if let Some(Bson::Document(vars)) = l.get("let") {
        vars.values()
            .try_for_each(|v| expressions::check(shape, v))?;
    }
    if let Some(p) = l.get("pipeline") {
        let Bson::Array(p) = p else {
            return Err(Error::Malformed("$lookup pipeline must be an array".into()));
        };
        without_markings(
            cx,
            &ns,
            "a $lookup sub-pipeline cannot filter on another collection's encrypted field",
            |cx| pipeline(cx, &mut foreign.clone(), p, Kind::Foreign),
        )?;
    }
    if let Some(s) = schema.filter(|s| s.has_encrypted_fields()) {
        shape.join(as_field, ns, s);
    }
    Ok(())
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

fn union_with<'s>(cx: &mut Ctx<'_, 's>, shape: &mut Shape<'s>, arg: &Bson) -> Result<(), Error> {
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
                // `{pipeline: [{$documents: …}, …]}`: no collection.
                None => return documents_pipeline(cx, shape, u.get("pipeline")),
            }
        }
        _ => return Err(Error::Malformed("$unionWith needs a collection".into())),
    };
    let ns = namespace(cx, &coll, "$unionWith")?;
    let schema = cx.schema(&ns)?;
    if let Some(p) = stages {
        let Bson::Array(p) = p else {
            return Err(Error::Malformed(
                "$unionWith pipeline must be an array".into(),
            ));
        };
        let mut foreign = Shape::of(ns.clone(), schema);
        without_markings(
            cx,
            &ns,
            "a $unionWith sub-pipeline cannot filter on another collection's encrypted field",
            |cx| pipeline(cx, &mut foreign, p, Kind::Foreign),
        )?;
    }
    if let Some(s) = schema.filter(|s| s.has_encrypted_fields()) {
        shape.union(ns, s);
    }
    Ok(())
}

/// `$merge` / `$out`: a pipeline cannot encrypt what it writes, so neither
/// the documents written nor the collection written may have encrypted
/// fields.
fn write_stage<'s>(
    cx: &mut Ctx<'_, 's>,
    shape: &Shape<'s>,
    op: &str,
    arg: &Bson,
) -> Result<(), Error> {
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
    if shape.encrypted() {
        return Err(Error::PipelineWrite {
            stage: op.to_owned(),
            target: target.to_string(),
            encrypted: shape.ns().to_string(),
        });
    }
    if let Bson::Document(m) = arg
        && let Some(Bson::Array(p)) = m.get("whenMatched")
    {
        pipeline(cx, &mut Shape::of(target, None), p, Kind::Stored)?;
    }
    Ok(())
}
