//! `csfle preview --check-schema-map`: the strict schema parser of
//! `tests/schema_strict.rs` as the command line reports it, without a key
//! vault or a server.

const RANDOM: &str = "AEAD_AES_256_CBC_HMAC_SHA_512-Random";
const DET: &str = "AEAD_AES_256_CBC_HMAC_SHA_512-Deterministic";

/// `csfle preview --check-schema-map`: one line per entry, without a key
/// vault or a server; exit 2 when any entry is refused, 0 otherwise.
#[test]
fn preview_check_schema_map_lints_a_map() {
    let dir = tempfile::tempdir().unwrap();
    let key = r#"[{"$binary": {"base64": "BwcHBwcHBwcHBwcHBwcHBw==", "subType": "04"}}]"#;
    let encrypt = |ty: &str, algorithm: &str| {
        format!(
            r#"{{"encrypt": {{"keyId": {key}, "bsonType": "{ty}", "algorithm": "{algorithm}"}}}}"#
        )
    };
    let map = format!(
        r#"{{
            "app.ok": {{"bsonType": "object", "properties": {{"ssn": {}}}}},
            "enc": {{}},
            "app.typo": {{"Properties": {{"ssn": {}}}}},
            "app.wrapped": {{"$jsonSchema": {{"properties": {{"ssn": {}}}}}}},
            "app.det": {{"properties": {{"score": {}}}}}
        }}"#,
        encrypt("string", DET),
        encrypt("string", RANDOM),
        encrypt("string", RANDOM),
        encrypt("double", DET),
    );
    let run = |text: &str| {
        let path = dir.path().join("map.json");
        std::fs::write(&path, text).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_csfle"))
            .args(["preview", "--check-schema-map"])
            .arg(&path)
            // --check-schema-map takes no other flag, from the environment either.
            .env_remove("CSFLE_URI")
            .env_remove("CSFLE_KEY_VAULT")
            .env_remove("CSFLE_KMS_ALLOWED_HOSTS")
            .output()
            .unwrap()
    };
    let out = run(&map);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let line = |prefix: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line '{prefix}…' in:\n{stdout}"))
            .to_owned()
    };
    assert_eq!(line("ok app.ok"), "ok app.ok");
    assert!(line("refused enc:").contains("must be \"db.collection\""));
    assert!(line("refused app.typo:").contains("Unknown $jsonSchema keyword: Properties"));
    assert!(line("refused app.wrapped:").contains("unwrap it"));
    assert!(
        line("refused app.det:")
            .contains("Cannot use deterministic encryption for element of type: double")
    );
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
    assert!(
        stderr.contains("4 of 5 schema map entries refused"),
        "{stderr}"
    );

    let ok = format!(
        r#"{{"app.ok": {{"bsonType": "object", "properties": {{"ssn": {}}}}}}}"#,
        encrypt("string", DET)
    );
    let out = run(&ok);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "ok app.ok");
}
