use super::super::Error;
use super::*;

/// A self-signed certificate and its key, as rcgen writes them
/// (`CERTIFICATE`, PKCS#8 `PRIVATE KEY`), and the key's DER.
fn identity() -> (String, String, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["client".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem(), key.serialize_der())
}

#[test]
fn the_certificate_parser_never_sees_the_private_key() {
    let (cert, key, der) = identity();
    // The key first, an EC PARAMETERS block and text between blocks.
    let pem = format!(
        "{key}-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n\
         -----END EC PARAMETERS-----\nsome text\n{cert}"
    );
    let only = certificate_pem(pem.as_bytes(), "tlsCertificateKeyFile").unwrap();
    let only = String::from_utf8(only).unwrap();
    assert_eq!(only.trim(), cert.trim());
    assert!(!only.contains("PRIVATE KEY"), "{only}");
    assert_eq!(certificates(pem.as_bytes(), "tlsCAFile").unwrap().len(), 1);
    let (format, decoded) = private_key(pem.as_bytes()).unwrap();
    assert_eq!(format, KeyFormat::Pkcs8);
    assert_eq!(decoded.as_slice(), der.as_slice());
    assert!(client_identity(pem.as_bytes()).is_ok());
}

#[test]
fn ambiguous_or_cut_identity_files_are_refused() {
    let (cert, key, _) = identity();
    let (_, other_key, _) = identity();
    let two_keys = format!("{cert}{key}{other_key}");
    let e = private_key(two_keys.as_bytes()).unwrap_err();
    assert!(e.contains("more than one private key"), "{e}");
    // A key block without its end line.
    let cut = format!("{cert}{}", &key[..key.len() / 2]);
    let e = private_key(cut.as_bytes()).unwrap_err();
    assert!(e.contains("no private key"), "{e}");
    // A certificate block left open, its text running into the key and
    // on to the next certificate's end line: refused, so the key's
    // text never reaches the certificate parser.
    let open = cert
        .trim_end()
        .strip_suffix("-----END CERTIFICATE-----")
        .unwrap();
    for bad in [format!("{open}\n{key}"), format!("{open}\n{key}{cert}")] {
        let e = certificate_pem(bad.as_bytes(), "tlsCertificateKeyFile").unwrap_err();
        assert!(e.contains("not a valid PEM block"), "{e}");
    }
    // No certificate at all.
    let e = certificates(key.as_bytes(), "tlsCertificateKeyFile").unwrap_err();
    assert!(e.contains("no certificate"), "{e}");
}

#[test]
fn tls_and_connection_error_text_is_short_and_printable() {
    let long = format!("bad\ncertificate \u{1b}[31m{}", "x".repeat(10_000));
    let e = io_failure(std::io::Error::new(std::io::ErrorKind::InvalidData, long));
    let CallError::Tls(message) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(message.chars().count(), 256);
    assert!(!message.chars().any(char::is_control), "{message}");
    assert!(message.starts_with("bad?certificate ?[31m"), "{message}");
    let e = io_failure(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "reset\r\nby peer",
    ));
    assert!(
        matches!(&e, CallError::Connection { message, .. } if message == "reset??by peer"),
        "{e:?}"
    );
}

#[test]
fn only_reads_can_be_sent_twice() {
    assert!(repeatable_after_sending(Operation::Get));
    assert!(repeatable_after_sending(Operation::Encrypt));
    assert!(repeatable_after_sending(Operation::Decrypt));
    assert!(!repeatable_after_sending(Operation::Register));
    assert!(!repeatable_after_sending(Operation::Create));
    assert!(!repeatable_after_sending(Operation::Activate));
}

#[tokio::test]
async fn a_reply_is_read_to_its_announced_length_and_no_further() {
    // A header announcing 8 bytes, the 8 bytes, then bytes of a next
    // message that must stay unread.
    let mut wire = vec![0x42, 0x00, 0x7B, 0x01, 0, 0, 0, 8];
    wire.extend_from_slice(&[0x42, 0x00, 0x7F, 0x05, 0, 0, 0, 0]);
    wire.extend_from_slice(b"trailing");
    let mut input = &wire[..];
    let reply = read_reply(&mut input).await.unwrap();
    assert_eq!(&reply[..], &wire[..16]);
    assert_eq!(input, b"trailing");
}

#[tokio::test]
async fn short_and_oversized_replies_are_errors() {
    let mut input: &[u8] = &[0x42, 0x00, 0x7B, 0x01, 0, 0];
    assert!(matches!(
        read_reply(&mut input).await,
        Err(CallError::ReplyCut {
            received: 6,
            expected: None
        })
    ));
    let mut input: &[u8] = &[0x42, 0x00, 0x7B, 0x01, 0, 0, 0, 16, 1, 2, 3];
    assert!(matches!(
        read_reply(&mut input).await,
        Err(CallError::ReplyCut {
            received: 11,
            expected: Some(24)
        })
    ));
    // One byte over the cap: refused from the header, nothing more read.
    let len = u32::try_from(MAX_REPLY_LEN - 8 + 1).unwrap().to_be_bytes();
    let wire = [0x42, 0x00, 0x7B, 0x01, len[0], len[1], len[2], len[3], 9, 9];
    let mut input = &wire[..];
    assert!(matches!(
        read_reply(&mut input).await,
        Err(CallError::Reply(Error::ResponseTooLarge { .. }))
    ));
    assert_eq!(input, &[9, 9]);
    // A length field past what any reply may be: the framer's own cap.
    let mut input: &[u8] = &[0x42, 0x00, 0x7B, 0x01, 0xFF, 0xFF, 0xFF, 0xFF];
    assert!(matches!(
        read_reply(&mut input).await,
        Err(CallError::Reply(Error::ResponseTooLarge { .. }))
    ));
}
