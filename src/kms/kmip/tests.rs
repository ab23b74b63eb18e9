//! Golden vectors from libmongocrypt (kms-message's KMIP tests and
//! `test-mongocrypt-kms-ctx.c`), then hostile input: truncated messages,
//! lengths past the end, huge lengths, wrong types and deep nesting, each
//! a typed error and never a panic.

// byte vectors from libmongocrypt's kms-message tests (Apache-2.0), snapshot 3a65b40d
mod vectors;

use super::request;
use super::ttlv::{self, ItemType, MAX_DEPTH, Tag, Value, Writer};
use super::*;
use proptest::prelude::*;
use vectors::*;

/// Bytes of a hex string; spaces and `|` (kms-message's separators) are
/// ignored.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    assert_eq!(digits.len() % 2, 0, "odd number of hex digits");
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("ASCII");
            u8::from_str_radix(pair, 16).expect("hex digit")
        })
        .collect()
}

const KEK_UNIQUE_IDENTIFIER: &str = "111";
const KM_UNIQUE_IDENTIFIER: &str = "7FJYvnV6XkaUCWuY96bCSc6AuhvkPpqI";

// ---------------------------------------------------------------------
// Requests: test_kms_kmip_request.c and test-mongocrypt-kms-ctx.c.

#[test]
fn requests_are_byte_identical_to_libmongocrypt() {
    let km_secret = hex(KM_REQ_REGISTER_SECRETDATA_SECRETDATA);
    let plaintext = hex(CTX_PLAINTEXT);
    let key_material = hex(CTX_IV_CIPHERTEXT);
    let cases: Vec<(&str, Result<Request, Error>, &str)> = vec![
        (
            "kms-message register_secretdata",
            request::register_secret_data(&km_secret),
            KM_REQ_REGISTER_SECRETDATA_REQUEST,
        ),
        (
            "kms-message get",
            request::get(KM_UNIQUE_IDENTIFIER),
            KM_REQ_GET_REQUEST,
        ),
        (
            "kms-message activate",
            request::activate(KM_UNIQUE_IDENTIFIER),
            KM_REQ_ACTIVATE_REQUEST,
        ),
        (
            "kms_ctx register",
            request::register_secret_data(&[0u8; SECRET_DATA_LEN]),
            CTX_REGISTER_REQUEST,
        ),
        (
            "kms_ctx activate",
            request::activate("39"),
            CTX_ACTIVATE_REQUEST,
        ),
        ("kms_ctx get", request::get("39"), CTX_GET_REQUEST),
        (
            "kms_ctx create",
            request::create_aes_256(),
            CTX_CREATE_REQUEST,
        ),
        (
            "kms_ctx encrypt",
            request::encrypt(KEK_UNIQUE_IDENTIFIER, &plaintext),
            CTX_ENCRYPT_REQUEST,
        ),
        (
            "kms_ctx decrypt",
            request::decrypt_key_material(KEK_UNIQUE_IDENTIFIER, &key_material),
            CTX_DECRYPT_REQUEST,
        ),
    ];
    assert_eq!(cases.len(), 9, "request vectors");
    for (name, built, expected) in cases {
        let built = built.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(built.as_bytes(), hex(expected).as_slice(), "{name}");
        // Every request decodes as one RequestMessage.
        let items = ttlv::decode(built.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(items.len(), 1, "{name}");
        assert_eq!(items[0].tag(), Tag::REQUEST_MESSAGE, "{name}");
    }
}

#[test]
fn request_operations() {
    let cases = [
        (request::create_aes_256(), Operation::Create),
        (request::register_secret_data(&[7; 96]), Operation::Register),
        (request::get("1"), Operation::Get),
        (request::activate("1"), Operation::Activate),
        (request::encrypt("1", &[1; 96]), Operation::Encrypt),
        (
            request::decrypt("1", &[1; 112], &[2; 16]),
            Operation::Decrypt,
        ),
    ];
    for (built, operation) in cases {
        let built = built.expect("builds");
        assert_eq!(built.operation(), operation);
        let items = ttlv::decode(built.as_bytes()).expect("decodes");
        let message = items[0].children().expect("structure");
        let batch_item = ttlv::find(message, Tag::BATCH_ITEM, ItemType::Structure)
            .and_then(|i| i.children())
            .expect("batch item");
        let code = ttlv::find(batch_item, Tag::OPERATION, ItemType::Enumeration)
            .and_then(|i| i.enumeration());
        assert_eq!(code, Some(operation.code()));
    }
}

#[test]
fn register_refuses_secret_data_of_another_length() {
    // kms_kmip_request_register_secretdata_invalid_test: 95 bytes.
    for len in [0, SECRET_DATA_LEN - 1, SECRET_DATA_LEN + 1] {
        let err = request::register_secret_data(&vec![0; len]).unwrap_err();
        assert!(matches!(err, Error::SecretDataLength { expected: 96, actual } if actual == len));
        assert!(err.to_string().contains("SecretData length"), "{err}");
    }
}

#[test]
fn decrypt_key_material_needs_the_iv() {
    let err = request::decrypt_key_material("1", &[0; IV_LEN - 1]).unwrap_err();
    assert!(
        matches!(err, Error::KeyMaterialTooShort { actual: 15 }),
        "{err}"
    );
    // An IV alone is a request with empty data, as libmongocrypt sends it.
    let built = request::decrypt_key_material("1", &[9; IV_LEN]).expect("builds");
    assert_eq!(
        built.as_bytes(),
        request::decrypt("1", &[], &[9; IV_LEN])
            .expect("builds")
            .as_bytes()
    );
}

#[test]
fn requests_do_not_show_their_bytes() {
    let secret = [0xAB; SECRET_DATA_LEN];
    let built = request::register_secret_data(&secret).expect("builds");
    let shown = format!("{built:?}");
    assert!(shown.contains("Register"), "{shown}");
    assert!(
        !shown.contains("171") && !shown.to_lowercase().contains("ab, ab"),
        "{shown}"
    );
    let mut w = Writer::default();
    w.byte_string(Tag::KEY_MATERIAL, &secret);
    assert!(!format!("{w:?}").contains("171"));
}

// ---------------------------------------------------------------------
// Replies: test_kms_kmip_response.c and test-mongocrypt-kms-ctx.c.

#[test]
fn replies_parse_as_in_libmongocrypt() {
    let mut count = 0;

    for (name, reply, uid) in [
        (
            "kms-message register",
            KM_RES_SUCCESS_REGISTER_RESPONSE,
            "39",
        ),
        ("kms_ctx register", CTX_SUCCESS_REGISTER_RESPONSE, "39"),
        ("kms_ctx activate", CTX_SUCCESS_ACTIVATE_RESPONSE, "39"),
        ("kms_ctx create", CTX_SUCCESS_CREATE_RESPONSE, "108"),
    ] {
        let parsed = parse_unique_identifier(&hex(reply)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed, uid, "{name}");
        count += 1;
    }

    for (name, reply, secret) in [
        (
            "kms-message get",
            KM_RES_SUCCESS_GET_RESPONSE,
            KM_RES_SUCCESS_GET_RESPONSE_SECRETDATA,
        ),
        (
            "kms_ctx get",
            CTX_SUCCESS_GET_RESPONSE,
            CTX_SUCCESS_GET_RESPONSE_SECRETDATA,
        ),
    ] {
        let parsed = parse_secret_data(&hex(reply)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(parsed.expose(), hex(secret).as_slice(), "{name}");
        assert_eq!(parsed.len(), SECRET_DATA_LEN, "{name}");
        count += 1;
    }

    let encrypted = parse_encrypt(&hex(CTX_SUCCESS_ENCRYPT_RESPONSE)).expect("encrypt reply");
    let key_material = hex(CTX_IV_CIPHERTEXT);
    assert_eq!(encrypted.key_material(), key_material);
    assert_eq!(encrypted.iv().as_slice(), &key_material[..IV_LEN]);
    assert_eq!(encrypted.data(), &key_material[IV_LEN..]);
    count += 1;

    let decrypted = parse_decrypt(&hex(CTX_SUCCESS_DECRYPT_RESPONSE)).expect("decrypt reply");
    assert_eq!(decrypted.expose(), hex(CTX_PLAINTEXT).as_slice());
    count += 1;

    // kms_kmip_response_get_secretdata_notfound_test.
    let err = parse_secret_data(&hex(KM_RES_ERROR_GET_RESPOSE_NOTFOUND)).unwrap_err();
    match &err {
        Error::Failed {
            status,
            reason,
            message,
        } => {
            assert_eq!(*status, ResultStatus(1));
            assert_eq!(*reason, Some(ResultReason(1)));
            assert_eq!(message, "ResultReasonItemNotFound");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    let shown = err.to_string();
    assert!(shown.contains("ResultReasonItemNotFound"), "{shown}");
    assert!(shown.contains("Operation Failed"), "{shown}");
    assert!(shown.contains("Item Not Found"), "{shown}");
    count += 1;

    assert_eq!(count, 9, "reply vectors");
}

#[test]
fn a_failed_reply_fails_every_parser() {
    let reply = hex(KM_RES_ERROR_GET_RESPOSE_NOTFOUND);
    assert!(matches!(
        parse_unique_identifier(&reply),
        Err(Error::Failed { .. })
    ));
    assert!(matches!(parse_encrypt(&reply), Err(Error::Failed { .. })));
    assert!(matches!(parse_decrypt(&reply), Err(Error::Failed { .. })));
}

#[test]
fn key_material_is_not_in_debug() {
    let parsed = parse_secret_data(&hex(KM_RES_SUCCESS_GET_RESPONSE)).expect("get reply");
    assert_eq!(format!("{parsed:?}"), "SecretBytes(..)");
    let decoded = hex(KM_RES_SUCCESS_GET_RESPONSE);
    let items = ttlv::decode(&decoded).expect("decodes");
    let shown = format!("{items:?}");
    assert!(shown.contains("ByteString(96 bytes)"), "{shown}");
    assert!(!shown.contains("255, 168"), "{shown}");
    let zeroizing = parsed.into_zeroizing();
    assert_eq!(
        zeroizing.as_slice(),
        hex(KM_RES_SUCCESS_GET_RESPONSE_SECRETDATA).as_slice()
    );
}

// ---------------------------------------------------------------------
// Framing: test_kms_kmip_response_parser.c and the bad lengths of
// test-mongocrypt-kms-ctx.c.

/// KMIP 1.4 §9.1.2: a Structure holding an Enumeration 254 and an Integer
/// 255, tags 420004 and 420005.
const SAMPLE_STRUCTURE: &str = "42 00 20 | 01 | 00 00 00 20 | 42 00 04 | 05 | 00 00 00 04 | 00 00 00 FE 00 00 00 00 | 42 00 05 | 02 | 00 00 00 04 | 00 00 00 FF 00 00 00 00";
const SAMPLE_FIRST_LENGTH: usize = 32;

#[test]
fn framer_asks_for_the_header_then_the_rest() {
    // kms_kmip_response_parser_test.
    let data = hex(SAMPLE_STRUCTURE);
    let mut framer = ResponseFramer::new();
    assert_eq!(framer.wants_bytes(), ttlv::HEADER_LEN);
    framer.feed(&data[..1]).expect("one byte");
    assert_eq!(framer.wants_bytes(), ttlv::HEADER_LEN - 1);
    framer
        .feed(&data[1..ttlv::HEADER_LEN])
        .expect("rest of header");
    assert_eq!(framer.wants_bytes(), SAMPLE_FIRST_LENGTH);
    assert!(!framer.is_complete());
    framer.feed(&data[ttlv::HEADER_LEN..]).expect("body");
    assert_eq!(framer.wants_bytes(), 0);
    assert!(framer.is_complete());
    let message = framer.take_message().expect("complete");
    assert_eq!(message.as_slice(), data.as_slice());
}

fn feed_in_wanted_chunks(framer: &mut ResponseFramer, data: &[u8]) {
    let mut at = 0;
    while framer.wants_bytes() > 0 {
        let want = framer.wants_bytes();
        framer.feed(&data[at..at + want]).expect("wanted bytes");
        at += want;
    }
    assert_eq!(at, data.len());
}

#[test]
fn framer_is_reusable() {
    // kms_kmip_response_parser_reuse_test.
    let data = hex(SAMPLE_STRUCTURE);
    let mut framer = ResponseFramer::new();
    for _ in 0..2 {
        feed_in_wanted_chunks(&mut framer, &data);
        assert_eq!(
            framer.take_message().expect("complete").as_slice(),
            data.as_slice()
        );
        assert_eq!(framer.wants_bytes(), ttlv::HEADER_LEN);
    }
}

#[test]
fn framer_refuses_bytes_past_the_reply() {
    // kms_kmip_response_parser_excess_test.
    let data = hex(SAMPLE_STRUCTURE);
    let mut framer = ResponseFramer::new();
    feed_in_wanted_chunks(&mut framer, &data);
    let err = framer.feed(&data[..1]).unwrap_err();
    assert!(matches!(err, Error::ResponseOverrun));
    assert_eq!(err.to_string(), "KMIP parser was fed too much data");
    // The whole reply and one byte more in a single call: refused too.
    let mut framer = ResponseFramer::new();
    let mut longer = data.clone();
    longer.push(0);
    assert!(matches!(framer.feed(&longer), Err(Error::ResponseOverrun)));
}

#[test]
fn framer_refuses_an_incomplete_reply() {
    // kms_kmip_response_parser_notenough_test.
    let data = hex(SAMPLE_STRUCTURE);
    let mut framer = ResponseFramer::new();
    framer.feed(&data[..ttlv::HEADER_LEN]).expect("header");
    let err = framer.take_message().unwrap_err();
    assert!(
        matches!(err, Error::IncompleteResponse { missing: 32 }),
        "{err}"
    );
    assert!(err.to_string().contains("does not have a complete message"));
}

#[test]
fn framer_caps_the_reply() {
    // kms_response_parser_response_too_big_test, with csfle's cap: a reply
    // of exactly MAX_RESPONSE_LEN bytes is taken, one byte more is not.
    let body = MAX_RESPONSE_LEN - ttlv::HEADER_LEN;
    let mut header = vec![0x42, 0x00, 0x7b, 0x01];
    header.extend_from_slice(&u32::try_from(body).expect("fits").to_be_bytes());
    let mut framer = ResponseFramer::new();
    framer.feed(&header).expect("header");
    framer.feed(&vec![0; body]).expect("the whole reply");
    assert!(framer.is_complete());
    assert!(matches!(framer.feed(&[0]), Err(Error::ResponseOverrun)));

    let mut header = vec![0x42, 0x00, 0x7b, 0x01];
    header.extend_from_slice(&u32::try_from(body + 1).expect("fits").to_be_bytes());
    let err = ResponseFramer::new().feed(&header).unwrap_err();
    assert!(matches!(err, Error::ResponseTooLarge { .. }), "{err}");
}

#[test]
fn framer_bad_lengths_from_kms_ctx() {
    // _test_mongocrypt_kms_ctx_kmip_response_bad_length (MONGOCRYPT-909).
    let mut count = 0;

    // Length UINT32_MAX: an error, not an abort.
    let mut framer = ResponseFramer::new();
    assert_eq!(framer.wants_bytes(), 8);
    let err = framer
        .feed(&[0x42, 0x00, 0x7b, 0x01, 0xff, 0xff, 0xff, 0xff])
        .unwrap_err();
    assert!(
        err.to_string().contains("KMS KMIP response too large"),
        "{err}"
    );
    // It keeps refusing.
    assert!(framer.feed(&[0]).is_err());
    count += 1;

    // Length 1: one more byte wanted, eight refused.
    let header = [0x42, 0x00, 0x7b, 0x01, 0x00, 0x00, 0x00, 0x01];
    let mut framer = ResponseFramer::new();
    framer.feed(&header).expect("header");
    assert_eq!(framer.wants_bytes(), 1);
    assert!(matches!(framer.feed(&header), Err(Error::ResponseOverrun)));
    count += 1;

    // Length 0: complete at once, and no Unique Identifier in it.
    let header = [0x42, 0x00, 0x7b, 0x01, 0x00, 0x00, 0x00, 0x00];
    let mut framer = ResponseFramer::new();
    framer.feed(&header).expect("header");
    let message = framer.take_message().expect("complete");
    let err = parse_unique_identifier(&message).unwrap_err();
    assert!(matches!(err, Error::Missing(Tag::BATCH_ITEM)), "{err}");
    count += 1;

    assert_eq!(count, 3, "bad-length vectors");
}

// ---------------------------------------------------------------------
// The codec: test_kmip_reader_writer.c (KMIP 1.4 §9.1.2).

const SPEC_INTEGER: &str = "42 00 20 | 02 | 00 00 00 04 | 00 00 00 08 00 00 00 00";
const SPEC_LONG_INTEGER: &str = "42 00 20 | 03 | 00 00 00 08 | 01 B6 9B 4B A5 74 92 00";
const SPEC_ENUMERATION: &str = "42 00 20 | 05 | 00 00 00 04 | 00 00 00 FF 00 00 00 00";
const SPEC_BOOLEAN: &str = "42 00 20 | 06 | 00 00 00 08 | 00 00 00 00 00 00 00 01";
const SPEC_TEXT_STRING: &str =
    "42 00 20 | 07 | 00 00 00 0B | 48 65 6C 6C 6F 20 57 6F 72 6C 64 00 00 00 00 00";
const SPEC_BYTE_STRING: &str = "42 00 20 | 08 | 00 00 00 03 | 01 02 03 00 00 00 00 00";
const SPEC_DATE_TIME: &str = "42 00 20 | 09 | 00 00 00 08 | 00 00 00 00 47 DA 67 F8";

fn written(write: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::default();
    write(&mut w);
    w.finish().expect("no overflow").to_vec()
}

#[test]
fn writer_matches_the_specification_examples() {
    // kms_kmip_writer_test (Big Integer and Interval: no vectors there).
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "An Integer containing the decimal value 8",
            written(|w| w.integer(Tag::COMPROMISE_DATE, 8)),
            SPEC_INTEGER,
        ),
        (
            "A Long Integer containing the decimal value 123456789000000000",
            written(|w| w.long_integer(Tag::COMPROMISE_DATE, 123_456_789_000_000_000)),
            SPEC_LONG_INTEGER,
        ),
        (
            "An Enumeration with value 255",
            written(|w| w.enumeration(Tag::COMPROMISE_DATE, 255)),
            SPEC_ENUMERATION,
        ),
        (
            "A boolean containing the value true",
            written(|w| w.boolean(Tag::COMPROMISE_DATE, true)),
            SPEC_BOOLEAN,
        ),
        (
            "A Text String with the value 'Hello World'",
            written(|w| w.text_string(Tag::COMPROMISE_DATE, "Hello World")),
            SPEC_TEXT_STRING,
        ),
        (
            "A Byte String with the value { 0x01, 0x02, 0x03 }",
            written(|w| w.byte_string(Tag::COMPROMISE_DATE, &[1, 2, 3])),
            SPEC_BYTE_STRING,
        ),
        (
            "A Date-Time, containing the value for Friday, March 14, 2008, 11:56:40 GMT",
            written(|w| w.date_time(Tag::COMPROMISE_DATE, 0x47DA_67F8)),
            SPEC_DATE_TIME,
        ),
        (
            "A Structure containing an Enumeration, value 254, followed by an Integer, value 255",
            written(|w| {
                w.structure(Tag::COMPROMISE_DATE, |w| {
                    w.enumeration(Tag::APPLICATION_SPECIFIC_INFORMATION, 254);
                    w.integer(Tag::ARCHIVE_DATE, 255);
                })
            }),
            SAMPLE_STRUCTURE,
        ),
    ];
    assert_eq!(cases.len(), 8, "writer vectors");
    for (description, actual, expected) in cases {
        assert_eq!(actual, hex(expected), "{description}");
    }
}

/// The one item `hex_text` decodes to, checked to be a CompromiseDate of
/// `length`.
fn single_item(hex_text: &str, length: u32) -> Value<'static> {
    let data: &'static [u8] = hex(hex_text).leak();
    let mut items = ttlv::decode(data).unwrap_or_else(|e| panic!("{hex_text}: {e}"));
    assert_eq!(items.len(), 1, "{hex_text}");
    let item = items.remove(0);
    assert_eq!(item.tag(), Tag::COMPROMISE_DATE);
    assert_eq!(item.length(), length);
    assert_eq!(item.offset(), ttlv::HEADER_LEN);
    item.value().clone()
}

#[test]
fn reader_matches_the_specification_examples() {
    // kms_kmip_reader_test and kms_kmip_reader_negative_int_test.
    let cases: Vec<(&str, u32, Value<'static>)> = vec![
        (SPEC_INTEGER, 4, Value::Integer(8)),
        (
            SPEC_LONG_INTEGER,
            8,
            Value::LongInteger(123_456_789_000_000_000),
        ),
        (SPEC_ENUMERATION, 4, Value::Enumeration(255)),
        (SPEC_BOOLEAN, 8, Value::Boolean(true)),
        (SPEC_TEXT_STRING, 11, Value::TextString(b"Hello World")),
        (SPEC_BYTE_STRING, 3, Value::ByteString(&[1, 2, 3])),
        (SPEC_DATE_TIME, 8, Value::DateTime(0x47DA_67F8)),
        (
            "42 00 20 | 02 | 00 00 00 04 | FF FF FF FF 00 00 00 00",
            4,
            Value::Integer(-1),
        ),
        (
            "42 00 20 | 02 | 00 00 00 04 | 80 00 00 00 00 00 00 00",
            4,
            Value::Integer(i32::MIN),
        ),
    ];
    assert_eq!(cases.len(), 9, "reader value vectors");
    for (hex_text, length, expected) in cases {
        assert_eq!(single_item(hex_text, length), expected, "{hex_text}");
    }

    // The Structure example.
    let Value::Structure(children) = single_item(SAMPLE_STRUCTURE, 0x20) else {
        panic!("expected a Structure");
    };
    assert_eq!(children.len(), 2);
    assert_eq!(children[0].tag(), Tag::APPLICATION_SPECIFIC_INFORMATION);
    assert_eq!(children[0].item_type(), ItemType::Enumeration);
    assert_eq!(children[0].length(), 4);
    assert_eq!(children[0].enumeration(), Some(254));
    assert_eq!(children[1].tag(), Tag::ARCHIVE_DATE);
    assert_eq!(children[1].item_type(), ItemType::Integer);
    assert_eq!(children[1].length(), 4);
    assert_eq!(children[1].integer(), Some(255));
}

#[test]
fn find_looks_at_one_level_and_matches_tag_and_type() {
    // kms_kmip_reader_find_test. (That test asserts the top-level
    // Structure's position is 0, but kms-message's find reports where the
    // value starts, 8, as kms_kmip_reader_find_and_recurse_test confirms
    // for the nested item; kms-message never runs the find test: its main
    // runs kms_kmip_reader_test twice instead.)
    let data = hex(SAMPLE_STRUCTURE);
    let items = ttlv::decode(&data).expect("decodes");
    let found = ttlv::find(&items, Tag::COMPROMISE_DATE, ItemType::Structure).expect("found");
    assert_eq!(found.offset(), 8);
    assert_eq!(found.length(), 32);
    // Mismatched tag, mismatched type, values nested within the Structure.
    assert!(ttlv::find(&items, Tag::ACTIVATION_DATE, ItemType::Structure).is_none());
    assert!(ttlv::find(&items, Tag::COMPROMISE_DATE, ItemType::Integer).is_none());
    assert!(
        ttlv::find(
            &items,
            Tag::APPLICATION_SPECIFIC_INFORMATION,
            ItemType::Enumeration
        )
        .is_none()
    );

    // kms_kmip_reader_find_and_recurse_test: inside the Structure the
    // Enumeration is found, its value 8 bytes into the Structure's value.
    let children = found.children().expect("structure");
    let nested = ttlv::find(
        children,
        Tag::APPLICATION_SPECIFIC_INFORMATION,
        ItemType::Enumeration,
    )
    .expect("found");
    assert_eq!(nested.offset() - found.offset(), 8);
    assert_eq!(nested.length(), 4);
}

#[test]
fn find_reads_enumerations_and_byte_strings() {
    // kms_kmip_reader_find_and_read_enum_test.
    let data = hex(
        "42 00 05 | 02 | 00 00 00 04 | 00 00 00 FF 00 00 00 00 | 42 00 04 | 05 | 00 00 00 04 | 00 00 00 FE 00 00 00 00",
    );
    let items = ttlv::decode(&data).expect("decodes");
    let value = ttlv::find(
        &items,
        Tag::APPLICATION_SPECIFIC_INFORMATION,
        ItemType::Enumeration,
    )
    .and_then(|i| i.enumeration());
    assert_eq!(value, Some(254));
    // The Integer is not an Enumeration.
    assert!(ttlv::find(&items, Tag::ARCHIVE_DATE, ItemType::Enumeration).is_none());

    // kms_kmip_reader_find_and_read_bytes_test.
    let data = hex(
        "42 00 05 | 02 | 00 00 00 04 | 00 00 00 FF 00 00 00 00 | 42 00 04 | 08 | 00 00 00 02 | 11 22 00 00 00 00 00 00",
    );
    let items = ttlv::decode(&data).expect("decodes");
    let bytes = ttlv::find(
        &items,
        Tag::APPLICATION_SPECIFIC_INFORMATION,
        ItemType::ByteString,
    )
    .and_then(|i| i.byte_string());
    assert_eq!(bytes, Some(&[0x11, 0x22][..]));
    assert!(ttlv::find(&items, Tag::ARCHIVE_DATE, ItemType::ByteString).is_none());
}

#[test]
fn a_structure_longer_than_the_input_is_refused() {
    // kms_kmip_reader_find_and_recurse_invalid_test.
    let err = ttlv::decode(&hex("42 00 20 | 01 | 00 00 00 FF")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::LengthPastEnd {
                tag: Tag::COMPROMISE_DATE,
                length: 0xFF,
                available: 0
            }
        ),
        "{err}"
    );
}

#[test]
fn every_type_round_trips() {
    let data = written(|w| {
        w.structure(Tag::COMPROMISE_DATE, |w| {
            w.integer(Tag::ARCHIVE_DATE, -7);
            w.long_integer(Tag::ARCHIVE_DATE, i64::MIN);
            w.enumeration(Tag::ARCHIVE_DATE, u32::MAX);
            w.boolean(Tag::ARCHIVE_DATE, false);
            w.text_string(Tag::ARCHIVE_DATE, "");
            w.text_string(Tag::ARCHIVE_DATE, "eight ch");
            w.byte_string(Tag::ARCHIVE_DATE, &[0xEE; 9]);
            w.date_time(Tag::ARCHIVE_DATE, 1_633_204_805);
            w.interval(Tag::ARCHIVE_DATE, 86_400);
            w.structure(Tag::ARCHIVE_DATE, |_| {});
        });
    });
    assert_eq!(data.len() % 8, 0);
    let items = ttlv::decode(&data).expect("decodes");
    let children = items[0].children().expect("structure");
    let values: Vec<&Value<'_>> = children.iter().map(|i| i.value()).collect();
    assert_eq!(
        values,
        [
            &Value::Integer(-7),
            &Value::LongInteger(i64::MIN),
            &Value::Enumeration(u32::MAX),
            &Value::Boolean(false),
            &Value::TextString(b""),
            &Value::TextString(b"eight ch"),
            &Value::ByteString(&[0xEE; 9]),
            &Value::DateTime(1_633_204_805),
            &Value::Interval(86_400),
            &Value::Structure(Vec::new()),
        ]
    );
}

#[test]
fn big_integers_are_skipped() {
    // kms-message reads no Big Integer; csfle decodes its bytes (a multiple
    // of 8) so a reply holding one still parses, and refuses other lengths.
    let data = hex("42 00 20 | 04 | 00 00 00 08 | 00 00 00 00 00 00 00 2A");
    assert!(matches!(
        single_item_value(&data),
        Ok(Value::BigInteger(b)) if b.len() == 8
    ));
    let data = hex("42 00 20 | 04 | 00 00 00 04 | 00 00 00 2A 00 00 00 00");
    assert!(matches!(
        ttlv::decode(&data),
        Err(Error::BadLength {
            item_type: ItemType::BigInteger,
            length: 4,
            ..
        })
    ));
}

fn single_item_value(data: &[u8]) -> Result<Value<'_>, Error> {
    let mut items = ttlv::decode(data)?;
    assert_eq!(items.len(), 1);
    Ok(items.remove(0).value().clone())
}

// ---------------------------------------------------------------------
// Hostile replies.

/// A ResponseMessage whose BatchItem holds what `batch_item` writes.
fn reply(batch_item: impl FnOnce(&mut Writer)) -> Vec<u8> {
    written(|w| {
        w.structure(Tag::RESPONSE_MESSAGE, |w| {
            w.structure(Tag::RESPONSE_HEADER, |w| {
                w.structure(Tag::PROTOCOL_VERSION, |w| {
                    w.integer(Tag::PROTOCOL_VERSION_MAJOR, 1);
                    w.integer(Tag::PROTOCOL_VERSION_MINOR, 2);
                });
                w.date_time(Tag::TIME_STAMP, 1_704_406_854);
                w.integer(Tag::BATCH_COUNT, 1);
            });
            w.structure(Tag::BATCH_ITEM, batch_item);
        });
    })
}

/// A successful reply whose ResponsePayload holds what `payload` writes.
fn success(payload: impl FnOnce(&mut Writer)) -> Vec<u8> {
    reply(|w| {
        w.enumeration(Tag::OPERATION, Operation::Encrypt.code());
        w.enumeration(Tag::RESULT_STATUS, 0);
        w.structure(Tag::RESPONSE_PAYLOAD, payload);
    })
}

/// Every golden reply.
fn golden_replies() -> Vec<Vec<u8>> {
    [
        KM_RES_SUCCESS_REGISTER_RESPONSE,
        KM_RES_SUCCESS_GET_RESPONSE,
        KM_RES_ERROR_GET_RESPOSE_NOTFOUND,
        CTX_SUCCESS_REGISTER_RESPONSE,
        CTX_SUCCESS_ACTIVATE_RESPONSE,
        CTX_SUCCESS_GET_RESPONSE,
        CTX_SUCCESS_CREATE_RESPONSE,
        CTX_SUCCESS_ENCRYPT_RESPONSE,
        CTX_SUCCESS_DECRYPT_RESPONSE,
    ]
    .iter()
    .map(|h| hex(h))
    .collect()
}

/// Runs every parser on `bytes`; they may fail, never panic.
fn parse_all(bytes: &[u8]) -> [bool; 5] {
    [
        ttlv::decode(bytes).is_ok(),
        parse_unique_identifier(bytes).is_ok(),
        parse_secret_data(bytes).is_ok(),
        parse_encrypt(bytes).is_ok(),
        parse_decrypt(bytes).is_ok(),
    ]
}

#[test]
fn truncated_replies_are_errors() {
    for reply in golden_replies() {
        for len in 0..reply.len() {
            let cut = &reply[..len];
            assert_eq!(parse_all(cut)[1..], [false; 4], "cut at {len}");
            if len > 0 {
                assert!(ttlv::decode(cut).is_err(), "cut at {len}");
            }
        }
    }
}

#[test]
fn lengths_past_the_end_are_errors() {
    let get = hex(KM_RES_SUCCESS_GET_RESPONSE);
    // The KeyMaterial's length is at offset 0x40 from its header's end in
    // the vector; find its header by its tag and type instead.
    let at = get
        .windows(4)
        .position(|w| w == [0x42, 0x00, 0x43, 0x08])
        .expect("KeyMaterial header");
    for length in [0x61u32, 0x68, 0x7FFF_FFFF, 0xFFFF_FFFF] {
        let mut bad = get.clone();
        bad[at + 4..at + 8].copy_from_slice(&length.to_be_bytes());
        let err = parse_secret_data(&bad).unwrap_err();
        assert!(
            matches!(
                err,
                Error::LengthPastEnd {
                    tag: Tag::KEY_MATERIAL,
                    ..
                }
            ),
            "{err}"
        );
    }
    // The outer length larger than the message.
    let mut bad = get.clone();
    bad[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        parse_secret_data(&bad),
        Err(Error::LengthPastEnd {
            tag: Tag::RESPONSE_MESSAGE,
            ..
        })
    ));
    // Trailing bytes that are not an item.
    let mut bad = get.clone();
    bad.extend_from_slice(&[0x42, 0x00]);
    assert!(matches!(
        parse_secret_data(&bad),
        Err(Error::Truncated { available: 2, .. })
    ));
}

#[test]
fn wrong_types_are_errors() {
    // A Result Status that is an Integer is not found (kms-message looks
    // for an Enumeration).
    let bad = reply(|w| {
        w.integer(Tag::RESULT_STATUS, 0);
        w.structure(Tag::RESPONSE_PAYLOAD, |w| {
            w.text_string(Tag::UNIQUE_IDENTIFIER, "1")
        });
    });
    assert!(matches!(
        parse_unique_identifier(&bad),
        Err(Error::Missing(Tag::RESULT_STATUS))
    ));
    // A Unique Identifier that is a Byte String.
    let bad = success(|w| w.byte_string(Tag::UNIQUE_IDENTIFIER, b"1"));
    assert!(matches!(
        parse_unique_identifier(&bad),
        Err(Error::Missing(Tag::UNIQUE_IDENTIFIER))
    ));
    // KeyMaterial that is a Text String.
    let bad = success(|w| {
        w.structure(Tag::SECRET_DATA, |w| {
            w.structure(Tag::KEY_BLOCK, |w| {
                w.structure(Tag::KEY_VALUE, |w| w.text_string(Tag::KEY_MATERIAL, "k"));
            });
        });
    });
    assert!(matches!(
        parse_secret_data(&bad),
        Err(Error::Missing(Tag::KEY_MATERIAL))
    ));
    // An unknown type byte, a fixed-size type of another length, a Boolean
    // of 2, a tag that is neither 0x42… nor 0x54….
    type Case = (&'static str, fn(&Error) -> bool);
    let cases: [Case; 5] = [
        (
            "42 00 20 | 0B | 00 00 00 08 | 00 00 00 00 00 00 00 00",
            |e: &Error| matches!(e, Error::UnknownType { byte: 0x0B, .. }),
        ),
        ("42 00 20 | 00 | 00 00 00 00", |e: &Error| {
            matches!(e, Error::UnknownType { byte: 0, .. })
        }),
        (
            "42 00 20 | 02 | 00 00 00 08 | 00 00 00 00 00 00 00 08",
            |e: &Error| {
                matches!(
                    e,
                    Error::BadLength {
                        item_type: ItemType::Integer,
                        length: 8,
                        ..
                    }
                )
            },
        ),
        (
            "42 00 20 | 06 | 00 00 00 08 | 00 00 00 00 00 00 00 02",
            |e: &Error| matches!(e, Error::BadBoolean { .. }),
        ),
        (
            "43 00 20 | 02 | 00 00 00 04 | 00 00 00 08 00 00 00 00",
            |e: &Error| matches!(e, Error::InvalidTag { offset: 0, .. }),
        ),
    ];
    for (hex_text, expected) in cases {
        let err = ttlv::decode(&hex(hex_text)).unwrap_err();
        assert!(expected(&err), "{hex_text}: {err}");
    }
    // Extension tags are read (and skipped by the parsers).
    let ok = success(|w| {
        w.integer(Tag::new(0x54_0001), 1);
        w.text_string(Tag::UNIQUE_IDENTIFIER, "42");
    });
    assert_eq!(parse_unique_identifier(&ok).expect("parses"), "42");
}

#[test]
fn an_encrypt_reply_needs_a_16_byte_iv() {
    for iv_len in [0, 8, 15, 17, 32] {
        let bad = success(|w| {
            w.text_string(Tag::UNIQUE_IDENTIFIER, "111");
            w.byte_string(Tag::DATA, &[1; 112]);
            w.byte_string(Tag::IV_COUNTER_NONCE, &vec![2; iv_len]);
        });
        let err = parse_encrypt(&bad).unwrap_err();
        assert!(
            matches!(err, Error::IvLength { actual } if actual == iv_len),
            "{err}"
        );
    }
    let no_iv = success(|w| w.byte_string(Tag::DATA, &[1; 112]));
    assert!(matches!(
        parse_encrypt(&no_iv),
        Err(Error::Missing(Tag::IV_COUNTER_NONCE))
    ));
}

#[test]
fn unusable_unique_identifiers_are_refused() {
    let long = "a".repeat(response::MAX_UNIQUE_IDENTIFIER_LEN + 1);
    for uid in [&b""[..], &b"1\x002"[..], &b"\xff\xfe"[..], long.as_bytes()] {
        // Written as raw bytes: the writer only takes UTF-8 text.
        let mut bad = success(|w| w.text_string(Tag::UNIQUE_IDENTIFIER, &"x".repeat(uid.len())));
        let at = bad.len() - uid.len().div_ceil(8) * 8;
        bad[at..at + uid.len()].copy_from_slice(uid);
        let err = parse_unique_identifier(&bad).unwrap_err();
        assert!(matches!(err, Error::InvalidUniqueIdentifier(_)), "{err}");
    }
    let longest = "a".repeat(response::MAX_UNIQUE_IDENTIFIER_LEN);
    let ok = success(|w| w.text_string(Tag::UNIQUE_IDENTIFIER, &longest));
    assert_eq!(parse_unique_identifier(&ok).expect("parses"), longest);
}

#[test]
fn a_failure_message_is_short_and_printable() {
    let message = format!("line one\nline two\u{1b}[31m{}", "x".repeat(1000));
    let bad = reply(|w| {
        w.enumeration(Tag::RESULT_STATUS, 1);
        w.text_string(Tag::RESULT_MESSAGE, &message);
    });
    match parse_unique_identifier(&bad).unwrap_err() {
        Error::Failed {
            status,
            reason,
            message,
        } => {
            assert_eq!(status, ResultStatus(1));
            assert_eq!(reason, None);
            assert_eq!(message.chars().count(), response::MAX_MESSAGE_CHARS);
            assert!(message.starts_with("line one?line two?[31m"), "{message}");
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    // No reason, no message: still a typed failure, with an unknown status.
    let bad = reply(|w| w.enumeration(Tag::RESULT_STATUS, 9));
    let err = parse_decrypt(&bad).unwrap_err();
    assert!(
        err.to_string().contains("Unknown KMIP result status (9)"),
        "{err}"
    );
    assert!(err.to_string().contains("none given"), "{err}");
}

/// `depth` Structures, one inside the other, around an Integer.
fn nested(depth: usize) -> Vec<u8> {
    fn nest(w: &mut Writer, depth: usize) {
        if depth == 0 {
            w.integer(Tag::ARCHIVE_DATE, 1);
        } else {
            w.structure(Tag::COMPROMISE_DATE, |w| nest(w, depth - 1));
        }
    }
    written(|w| nest(w, depth))
}

#[test]
fn deep_nesting_is_refused() {
    assert!(ttlv::decode(&nested(MAX_DEPTH)).is_ok());
    assert!(matches!(
        ttlv::decode(&nested(MAX_DEPTH + 1)),
        Err(Error::TooDeep { max: MAX_DEPTH })
    ));
    // A hostile chain of 10 000 Structure headers, each as long as the rest:
    // refused at the cap, without deep recursion.
    let levels = 10_000u32;
    let mut chain = Vec::new();
    for level in 0..levels {
        chain.extend_from_slice(&[0x42, 0x00, 0x7B, 0x01]);
        chain.extend_from_slice(&((levels - level - 1) * 8).to_be_bytes());
    }
    assert!(matches!(ttlv::decode(&chain), Err(Error::TooDeep { .. })));
    assert!(matches!(
        parse_secret_data(&chain),
        Err(Error::TooDeep { .. })
    ));
}

#[test]
fn golden_replies_survive_the_framer_byte_by_byte() {
    for reply in golden_replies() {
        let mut framer = ResponseFramer::new();
        for byte in &reply {
            assert!(framer.wants_bytes() > 0);
            framer
                .feed(std::slice::from_ref(byte))
                .expect("wanted byte");
        }
        assert_eq!(
            framer.take_message().expect("complete").as_slice(),
            reply.as_slice()
        );
        // And in one call.
        let mut framer = ResponseFramer::new();
        framer.feed(&reply).expect("whole reply");
        assert!(framer.is_complete());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        parse_all(&bytes);
        let mut framer = ResponseFramer::new();
        if framer.feed(&bytes).is_ok() && framer.is_complete() {
            let message = framer.take_message().expect("complete");
            parse_all(&message);
        }
    }

    #[test]
    fn mutated_replies_never_panic(
        which in 0usize..9,
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut reply = golden_replies().swap_remove(which);
        let i = at.index(reply.len());
        reply[i] = byte;
        parse_all(&reply);
        let len = cut.index(reply.len() + 1);
        parse_all(&reply[..len]);
    }

    #[test]
    fn strings_round_trip(text in ".{0,40}", bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        let data = written(|w| {
            w.text_string(Tag::UNIQUE_IDENTIFIER, &text);
            w.byte_string(Tag::DATA, &bytes);
        });
        prop_assert_eq!(data.len() % 8, 0);
        let items = ttlv::decode(&data).expect("decodes");
        prop_assert_eq!(items.len(), 2);
        prop_assert_eq!(items[0].text_string(), Some(text.as_bytes()));
        prop_assert_eq!(items[1].byte_string(), Some(bytes.as_slice()));
    }
}

// ---------------------------------------------------------------------
// Replies tied to their requests.

#[test]
fn replies_must_answer_the_request_they_are_read_for() {
    use super::request::{OBJECT_SECRET_DATA, OBJECT_SYMMETRIC_KEY};
    use super::response::check_answers;
    let get = hex(KM_RES_SUCCESS_GET_RESPONSE);
    check_answers(&get, Operation::Get, Some("39"), Some(OBJECT_SECRET_DATA)).unwrap();
    assert_eq!(
        check_answers(&get, Operation::Decrypt, Some("39"), None),
        Err(Error::WrongOperation {
            expected: Operation::Decrypt,
            actual: 0x0A
        })
    );
    assert_eq!(
        check_answers(&get, Operation::Get, Some("40"), None),
        Err(Error::WrongUniqueIdentifier)
    );
    assert_eq!(
        check_answers(&get, Operation::Get, Some("39"), Some(OBJECT_SYMMETRIC_KEY)),
        Err(Error::WrongObjectType {
            expected: OBJECT_SYMMETRIC_KEY,
            actual: OBJECT_SECRET_DATA
        })
    );
    let create = hex(CTX_SUCCESS_CREATE_RESPONSE);
    check_answers(&create, Operation::Create, None, Some(OBJECT_SYMMETRIC_KEY)).unwrap();
    let register = hex(KM_RES_SUCCESS_REGISTER_RESPONSE);
    check_answers(&register, Operation::Register, None, None).unwrap();
    for (reply, operation) in [
        (CTX_SUCCESS_ENCRYPT_RESPONSE, Operation::Encrypt),
        (CTX_SUCCESS_DECRYPT_RESPONSE, Operation::Decrypt),
    ] {
        let reply = hex(reply);
        check_answers(&reply, operation, Some(KEK_UNIQUE_IDENTIFIER), None).unwrap();
        assert_eq!(
            check_answers(&reply, operation, Some("11"), None),
            Err(Error::WrongUniqueIdentifier),
            "{operation:?}: a prefix of the id is another id"
        );
    }
    // libmongocrypt's Activate vector is its Register reply (Operation 3):
    // csfle refuses it as an answer to Activate.
    let activate = hex(CTX_SUCCESS_ACTIVATE_RESPONSE);
    assert!(matches!(
        check_answers(&activate, Operation::Activate, Some("39"), None),
        Err(Error::WrongOperation { actual: 0x03, .. })
    ));
    // A reply without the Operation, or without the object it should name.
    let no_operation = reply(|w| {
        w.enumeration(Tag::RESULT_STATUS, 0);
        w.structure(Tag::RESPONSE_PAYLOAD, |w| {
            w.text_string(Tag::UNIQUE_IDENTIFIER, "111");
        });
    });
    assert_eq!(
        check_answers(&no_operation, Operation::Encrypt, Some("111"), None),
        Err(Error::Missing(Tag::OPERATION))
    );
    let no_identifier = success(|w| w.byte_string(Tag::DATA, &[1; 112]));
    assert_eq!(
        check_answers(&no_identifier, Operation::Encrypt, Some("111"), None),
        Err(Error::Missing(Tag::UNIQUE_IDENTIFIER))
    );
    // A refusal is reported as such, whatever was asked.
    assert!(matches!(
        check_answers(
            &hex(KM_RES_ERROR_GET_RESPOSE_NOTFOUND),
            Operation::Get,
            Some("39"),
            None
        ),
        Err(Error::Failed { .. })
    ));
}
