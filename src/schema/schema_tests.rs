use super::*;
use bson::doc;

fn key() -> Bson {
    Bson::Array(vec![Bson::Binary(KeyId::from_bytes([1; 16]).to_binary())])
}

#[test]
fn inheritance_and_lookup() {
    let s = doc! {
        "bsonType": "object",
        "encryptMetadata": {"keyId": key(), "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Random"},
        "properties": {
            "ssn": {"encrypt": {"bsonType": "string", "algorithm": "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic"}},
            "med": {"bsonType": "object", "properties": {"notes": {"encrypt": {}}}},
            "name": {"bsonType": "string"},
        },
        "patternProperties": {"^secret_": {"encrypt": {"keyId": "/owner"}}},
    };
    let schema = EncryptionSchema::parse(&s, SchemaSource::Local).unwrap();
    let FieldInfo::Encrypted(ssn) = schema.field("ssn") else {
        panic!()
    };
    assert_eq!(ssn.algorithm, Algorithm::Deterministic);
    assert_eq!(ssn.key, EncryptKey::Id(KeyId::from_bytes([1; 16])));
    let FieldInfo::Encrypted(notes) = schema.field("med.notes") else {
        panic!()
    };
    assert_eq!(notes.algorithm, Algorithm::Random);
    assert!(matches!(
        schema.field("med.notes.x"),
        FieldInfo::BelowEncrypted(_)
    ));
    assert_eq!(schema.field("med"), FieldInfo::ContainsEncrypted);
    assert_eq!(schema.field("name"), FieldInfo::Plain);
    assert_eq!(schema.field("other.deep"), FieldInfo::Plain);
    let FieldInfo::Encrypted(p) = schema.field("secret_x") else {
        panic!()
    };
    assert_eq!(p.key, EncryptKey::AltNamePointer("/owner".into()));
}

#[test]
fn refusals() {
    let bad = |s: Document| {
        EncryptionSchema::parse(&s, SchemaSource::Local)
            .unwrap_err()
            .to_string()
    };
    let det = "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic";
    assert!(bad(doc! {"properties": {"a": {"encrypt": {"keyId": "/x", "bsonType": "string", "algorithm": det}}}})
        .contains("JSON pointer keyId is only allowed with the random algorithm"));
    assert!(
        bad(doc! {"properties": {"a": {"encrypt": {"keyId": key(), "algorithm": det}}}})
            .contains("requires exactly one bsonType")
    );
    assert!(bad(doc! {"properties": {"a": {"encrypt": {"keyId": key(), "bsonType": "double", "algorithm": det}}}})
        .contains("Cannot use deterministic encryption for element of type: double"));
    assert!(
        bad(doc! {"properties": {"a": {"encrypt": {"bsonType": "string"}}}}).contains("no keyId")
    );
    assert!(bad(doc! {"properties": {"a": {"items": {"encrypt": {}}}}}).contains("inside arrays"));
    assert!(
        bad(doc! {"properties": {"a": {"encrypt": {"keyId": key(), "algorithm": "AES-GCM"}}}})
            .contains("unknown encryption algorithm")
    );
    // Without encryption anywhere, untyped parents are fine…
    EncryptionSchema::parse(
        &doc! {"properties": {"a": {"properties": {"b": {"bsonType": "int"}}}}},
        SchemaSource::Local,
    )
    .unwrap();
    // …but unknown keywords are not, encryption or not: a misspelt
    // keyword is a schema that silently encrypts nothing.
    assert!(
        bad(doc! {"properties": {"a": {"properties": {"b": {"bsonTyp": "int"}}}}})
            .contains("Unknown $jsonSchema keyword: bsonTyp (at /properties/a/properties/b)")
    );
    assert!(
        bad(doc! {"anyOf": [{"format": "email"}]})
            .contains("'format' is not currently supported (at /anyOf/0)")
    );
    assert!(bad(doc! {"$jsonSchema": {}}).contains("unwrap it"));
}

#[test]
fn cross_check_and_literals() {
    let random = "AEAD_AES_256_CBC_HMAC_SHA_512-Random";
    // A property named `encrypt` and `encrypt` in an enum literal are
    // data, not keywords.
    let s = EncryptionSchema::parse(
        &doc! {"properties": {
            "encrypt": {"enum": [{"encrypt": {"keyId": key()}}]},
            "secret": {"encrypt": {"keyId": key(), "algorithm": random}},
        }},
        SchemaSource::Local,
    )
    .unwrap();
    assert_eq!(s.field("encrypt"), FieldInfo::Plain);
    assert!(matches!(s.field("secret"), FieldInfo::Encrypted(_)));
    // The parser's record of what it read matches the raw document.
    let mut r = Reader::new(SchemaSource::Local);
    let raw = doc! {"properties": {"a": {"encrypt": {"keyId": key(), "algorithm": random}}}};
    parse_node(
        &raw,
        "",
        &Metadata::default(),
        true,
        &Context::Modelled,
        &mut r,
    )
    .unwrap();
    r.cross_check(&raw, &mut Vec::new(), 0).unwrap();
    // A location it did not read is refused by the cross-check alone.
    let other = doc! {"title": "x", "properties": {"b": {"encrypt": {}}}};
    let e = r.cross_check(&other, &mut Vec::new(), 0).unwrap_err();
    assert!(e.to_string().contains("/properties/b/encrypt"), "{e}");
}

#[test]
fn key_pointer_to_encrypted_field() {
    let random = "AEAD_AES_256_CBC_HMAC_SHA_512-Random";
    let e = EncryptionSchema::parse(
        &doc! {"bsonType": "object", "properties": {
            "name": {"encrypt": {"keyId": key(), "algorithm": random}},
            "notes": {"encrypt": {"keyId": "/name", "algorithm": random}},
        }},
        SchemaSource::Local,
    )
    .unwrap_err();
    assert_eq!(e, Error::KeyPointerToEncrypted("/name".into()));
    // A plain field is a fine key name.
    EncryptionSchema::parse(
        &doc! {"properties": {
            "owner": {"bsonType": "string"},
            "notes": {"encrypt": {"keyId": "/owner", "algorithm": random}},
        }},
        SchemaSource::Local,
    )
    .unwrap();
}
