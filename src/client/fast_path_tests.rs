use super::*;
use bson::doc;

fn blob(first: u8, key: u8) -> Bson {
    let mut bytes = vec![first];
    bytes.extend_from_slice(&[key; 16]);
    bytes.push(ElementType::String as u8);
    bytes.extend_from_slice(&[0x5a; 64]);
    Bson::Binary(bson::Binary {
        subtype: BinarySubtype::Encrypted,
        bytes,
    })
}

fn raw(d: &Document) -> RawDocumentBuf {
    RawDocumentBuf::from_document(d).unwrap()
}

/// The scan lists the keys the full key walk lists, in its order, and
/// hands anything else back.
#[test]
fn scan_agrees_with_the_full_key_walk() {
    let docs = [
        doc! {"a": blob(1, 1), "b": {"c": blob(2, 2), "d": [blob(1, 3), 5]}, "e": blob(2, 1)},
        doc! {"x": "plain", "y": {"z": [1, 2, {"w": true}]}},
        doc! {"k": blob(2, 4), "l": blob(1, 2)},
    ];
    let raws: Vec<RawDocumentBuf> = docs.iter().map(raw).collect();
    let refs: Vec<&RawDocument> = raws.iter().map(|d| &**d).collect();
    let scan = scan_batch(&refs).unwrap();
    let (full, indexed) = super::super::encryption::batch_keys(&refs).unwrap();
    assert!(!indexed);
    assert_eq!(scan.refs, full);
    assert_eq!(scan.encrypted, [4, 0, 2]);

    // A marking, an unknown first byte, a truncated blob: the full
    // path's.
    for odd in [
        blob(0, 1),
        blob(9, 1),
        Bson::Binary(bson::Binary {
            subtype: BinarySubtype::Encrypted,
            bytes: vec![1, 2],
        }),
    ] {
        let r = raw(&doc! {"a": "x", "b": [odd]});
        assert_eq!(scan_batch(&[&*r]), None);
    }
}

/// Nesting: the bound is the full path's, and past it the scan hands
/// the batch back.
#[test]
fn scan_hands_deep_documents_back() {
    let mut d = doc! {"x": 1};
    for _ in 0..MAX_NESTING {
        d = doc! {"a": d};
    }
    let r = raw(&d);
    assert_eq!(scan_batch(&[&*r]), None);
    assert!(crate::nesting::check_raw(&r, 0).is_err());
    let mut d = doc! {"x": 1};
    for _ in 0..MAX_NESTING - 1 {
        d = doc! {"a": d};
    }
    let r = raw(&d);
    assert!(scan_batch(&[&*r]).is_some());
    assert!(crate::nesting::check_raw(&r, 0).is_ok());
}

/// The marking count holds on what the fast path sends.
#[test]
fn placed_ciphertexts_are_counted() {
    let docs = [
        raw(&doc! {"a": blob(1, 1), "b": "x"}),
        raw(&doc! {"c": [blob(2, 1)]}),
    ];
    assert!(check_placed(&docs, 2).is_ok());
    for made in [1, 3] {
        let e = check_placed(&docs, made).unwrap_err().to_string();
        assert!(e.contains("markings are in the command"), "{e}");
    }
    // A subtype-6 value that is not a ciphertext is not one of them.
    let odd = [raw(&doc! {"a": blob(1, 1), "b": blob(0, 1)})];
    assert!(check_placed(&odd, 2).is_err());
}

/// The insert plan takes only what it can reproduce.
#[test]
fn insert_plan_hands_back_what_it_does_not_reproduce() {
    let key = Bson::Array(vec![Bson::Binary(KeyId::from_bytes([7; 16]).to_binary())]);
    let schema = EncryptionSchema::parse(
        &doc! {"bsonType": "object", "properties": {
            "ssn": {"encrypt": {"keyId": key.clone(), "bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}},
            "notes": {"encrypt": {"keyId": "/owner", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}},
            "med": {"bsonType": "object", "properties": {"r": {"encrypt": {"keyId": key, "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}}}},
        }},
        crate::schema::SchemaSource::Local,
    )
    .unwrap();
    let ordered = doc! {"ordered": true};
    let one = |d: Document| vec![raw(&d)];
    let taken = one(doc! {"_id": 1, "ssn": "457-55-5462", "name": "x"});
    let plan = plan_insert(Some(&schema), &taken, &ordered).unwrap();
    assert_eq!(plan.refs(), [KeyRef::Id(KeyId::from_bytes([7; 16]))]);
    assert!(!plan.encrypts_nothing());
    for d in [
        doc! {"ssn": 5},
        doc! {"ssn": Bson::Null},
        doc! {"notes": "x", "owner": "k"},
        doc! {"med": {"r": "x"}},
        doc! {"a.b": "x"},
        doc! {"$a": "x"},
        doc! {"x": blob(0, 1)},
        doc! {"x": {"y": [blob(1, 1)]}},
    ] {
        let docs = one(d.clone());
        assert!(plan_insert(Some(&schema), &docs, &ordered).is_none(), "{d}");
    }
    assert!(plan_insert(Some(&schema), &taken, &doc! {"comment": "c"}).is_none());
    // A name given twice (a `Document` would keep one value), or a plain
    // value nested deeper than the fast path measures.
    let mut twice = RawDocumentBuf::new();
    twice.append("name", "x");
    twice.append("name", "y");
    assert!(plan_insert(Some(&schema), &[twice], &ordered).is_none());
    let mut deep = Bson::Int32(1);
    for _ in 0..MAX_PLAIN_DEPTH + 1 {
        deep = Bson::Array(vec![deep]);
    }
    let deep = one(doc! {"x": deep});
    assert!(plan_insert(Some(&schema), &deep, &ordered).is_none());
    let mut shallow = Bson::Int32(1);
    for _ in 0..MAX_PLAIN_DEPTH - 1 {
        shallow = Bson::Document(doc! {"d": shallow});
    }
    let shallow = one(doc! {"x": shallow});
    assert!(plan_insert(Some(&schema), &shallow, &ordered).is_some());
    let plain = one(doc! {"_id": 1, "name": "x"});
    assert!(
        plan_insert(Some(&schema), &plain, &ordered)
            .unwrap()
            .encrypts_nothing()
    );
}

/// The find plan takes a find by equality and hands back anything else.
#[test]
fn find_plan_hands_back_what_it_does_not_reproduce() {
    let key = Bson::Array(vec![Bson::Binary(KeyId::from_bytes([7; 16]).to_binary())]);
    let det = "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic";
    let schema = EncryptionSchema::parse(
        &doc! {"bsonType": "object", "properties": {
            "ssn": {"encrypt": {"keyId": key.clone(), "bsonType": "string", "algorithm": det}},
            "n": {"encrypt": {"keyId": key.clone(), "bsonType": "int", "algorithm": det}},
            "notes": {"encrypt": {"keyId": key.clone(), "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"}},
            "med": {"bsonType": "object", "properties": {"s": {"encrypt": {"keyId": key, "bsonType": "string", "algorithm": det}}}},
        }},
        crate::schema::SchemaSource::Local,
    )
    .unwrap();
    let id = KeyRef::Id(KeyId::from_bytes([7; 16]));
    let cmd = doc! {"find": "c", "filter": {"name": "x", "ssn": "457-55-5462", "n": 5}, "limit": 1i64, "singleBatch": true, "batchSize": 2, "skip": 0};
    let plan = plan_find(Some(&schema), &cmd).unwrap();
    assert_eq!(plan.refs(), [id]);
    assert_eq!(plan.equalities.len(), 3);
    assert_eq!(
        plan.equalities
            .iter()
            .filter(|e| e.encrypted.is_some())
            .count(),
        2
    );
    for taken in [
        doc! {"find": "c"},
        doc! {"find": "c", "filter": {}},
        doc! {"find": "c", "filter": {"name": "x", "age": 3, "id": Bson::Null}},
    ] {
        let plan = plan_find(Some(&schema), &taken).unwrap();
        assert!(plan.encrypts_nothing(), "{taken}");
    }
    assert!(plan_find(None, &cmd).unwrap().encrypts_nothing());
    for filter in [
        doc! {"ssn": 5},
        doc! {"ssn": Bson::Null},
        doc! {"ssn": {"$eq": "x"}},
        doc! {"ssn": ["x"]},
        doc! {"n": 2.5},
        doc! {"notes": "x"},
        doc! {"med": "x"},
        doc! {"med": {"s": "x"}},
        doc! {"med.s": "x"},
        doc! {"a.b": "x"},
        doc! {"$or": [{"ssn": "x"}]},
        doc! {"$comment": "x"},
        doc! {"": "x"},
        doc! {"x": blob(0, 1)},
        doc! {"x": blob(1, 1)},
        doc! {"x": {"y": 1}},
        doc! {"x": bson::Regex { pattern: "a".into(), options: String::new() }},
        doc! {"x": Bson::JavaScriptCode("f()".into())},
        doc! {"x": Bson::MaxKey},
    ] {
        let cmd = doc! {"find": "c", "filter": filter.clone()};
        assert!(plan_find(Some(&schema), &cmd).is_none(), "{filter}");
    }
    for cmd in [
        doc! {"find": 1, "filter": {"ssn": "x"}},
        doc! {"count": "c", "query": {"ssn": "x"}},
        doc! {"explain": {"find": "c", "filter": {"ssn": "x"}}},
        doc! {"find": "c", "filter": "x"},
        doc! {"find": "c", "filter": {"ssn": "x"}, "limit": "1"},
        doc! {"find": "c", "filter": {"ssn": "x"}, "singleBatch": 1},
        doc! {"find": "c", "filter": {"ssn": "x"}, "sort": {"ssn": 1}},
        doc! {"find": "c", "filter": {"ssn": "x"}, "projection": {"ssn": 0}},
        doc! {"find": "c", "filter": {"ssn": "x"}, "comment": "x"},
        doc! {"find": "c", "filter": {"ssn": "x"}, "$db": "app"},
        doc! {"find": "c", "filter": {"ssn": "x"}, "readConcern": {"level": "local"}},
        doc! {"filter": {"ssn": "x"}, "find": "c"},
    ] {
        assert!(plan_find(Some(&schema), &cmd).is_none(), "{cmd}");
    }
}
