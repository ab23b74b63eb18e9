//! Unit tests of `endpoint.rs` (a file of their own: the published crate
//! leaves `*_tests.rs` out and stays small).

use super::*;
use EndpointOrigin::*;

#[test]
fn syntax() {
    let ok = |s, o| Endpoint::parse(s, o).unwrap().to_string();
    assert_eq!(ok("Example.COM.:8443", KeyDocument), "example.com:8443");
    assert_eq!(
        ok("https://x.vault.azure.net/", Application),
        "x.vault.azure.net"
    );
    assert_eq!(ok("[::1]:9000", KeyDocument), "[::1]:9000");
    for bad in [
        "http://x.vault.azure.net",
        "https://x.vault.azure.net",
        "a@b.com",
        "b.com/path",
        "b.com?q",
        "b.com#f",
        "b.com:0",
        "b.com:65536",
        "b.com:",
        "b .com",
        "",
        "[::1",
        "-a.com",
        "a..com",
    ] {
        assert!(Endpoint::parse(bad, KeyDocument).is_err(), "{bad}");
    }
    for bad in [
        "http://a.com",
        "ftp://a.com",
        "https://u:p@a.com",
        "https://a.com/x",
        "https://a.com//",
    ] {
        assert!(Endpoint::parse(bad, Application).is_err(), "{bad}");
    }
    assert_eq!(
        normalize_application_endpoint("https://My.vault.azure.net:443/").unwrap(),
        "My.vault.azure.net:443"
    );
}

#[test]
fn public_lists() {
    let e = |s| Endpoint::parse(s, KeyDocument).unwrap();
    use ProviderKind::*;
    assert!(is_public_host(Aws, &e("kms.us-east-1.amazonaws.com")));
    assert!(is_public_host(
        Aws,
        &e("kms-fips.us-east-1.amazonaws.com:443")
    ));
    assert!(is_public_host(
        Aws,
        &e("vpce-1.kms.us-east-1.vpce.amazonaws.com")
    ));
    assert!(is_public_host(Aws, &e("kms.cn-north-1.amazonaws.com.cn")));
    assert!(!is_public_host(Aws, &e("kms.us-east-1.amazonaws.com:8443")));
    assert!(!is_public_host(Aws, &e("evil.com")));
    assert!(!is_public_host(Aws, &e("amazonaws.com.cn")));
    // Exactly KMS's hosts: names under AWS domains where anyone runs a
    // service (API Gateway, S3 buckets, ELB, EC2, PrivateLink services)
    // and malformed regions are refused.
    for hostile in [
        "abc123.execute-api.us-east-1.amazonaws.com",
        "kms.execute-api.us-east-1.amazonaws.com",
        "abc123.execute-api.cn-north-1.amazonaws.com.cn",
        "kms.s3.amazonaws.com",
        "kms-fips.s3.amazonaws.com",
        "kms.s3-us-west-2.amazonaws.com",
        "kms.s3-website-us-east-1.amazonaws.com",
        "kms.s3-external-1.amazonaws.com",
        "kms.s3.us-east-1.amazonaws.com",
        "bucket.s3.amazonaws.com",
        "kms.s3.cn-north-1.amazonaws.com.cn",
        "bucket.s3.cn-north-1.amazonaws.com.cn",
        "my-lb-1234.us-east-1.elb.amazonaws.com",
        "kms.elb.amazonaws.com",
        "my-lb-1234.cn-north-1.elb.amazonaws.com.cn",
        "kms.compute-1.amazonaws.com",
        "ec2-1-2-3-4.compute-1.amazonaws.com",
        "vpce-0123-ab12cd34.vpce-svc-0123456789abcdef0.us-east-1.vpce.amazonaws.com",
        "x.vpce.amazonaws.com",
        "vpce-0123.s3.us-east-1.vpce.amazonaws.com",
        "vpce-0123.execute-api.us-east-1.vpce.amazonaws.com",
        "evil.kms.us-east-1.vpce.amazonaws.com",
        "vpce-xyz.kms.us-east-1.vpce.amazonaws.com",
        "a.vpce-0123.kms.us-east-1.vpce.amazonaws.com",
        "vpce-0123.kms.us-east-1.vpce.amazonaws.com.evil",
        "vpce-0123.kms.us-east-1.amazonaws.com",
        "kms.us-east-1.amazonaws.com.cn",
        "kms-fips.cn-north-1.amazonaws.com.cn",
        "kms.cn-north-1.amazonaws.com.cn.evil",
        "kms.us-east-1.api.aws.evil",
        "x.kms.us-east-1.api.aws",
        "kms.us-east-1.on.aws",
        "kms.us--east-1.amazonaws.com",
        "kms.1us-east-1.amazonaws.com",
        "kms.us-east-x.amazonaws.com",
        "kms.us-1.amazonaws.com",
        "kms.local.amazonaws.com",
        "kms.amazonaws.com",
    ] {
        assert!(
            !is_public_host(Aws, &e(hostile)),
            "{hostile} must not be a public AWS KMS host"
        );
    }
    for legitimate in [
        "kms.us-east-1.amazonaws.com",
        "KMS.US-EAST-1.AMAZONAWS.COM.",
        "kms.us-gov-west-1.amazonaws.com",
        "kms.ap-southeast-4.amazonaws.com",
        "kms-fips.us-gov-west-1.amazonaws.com:443",
        "kms.us-east-1.api.aws",
        "kms-fips.us-east-1.api.aws",
        "kms.cn-north-1.amazonaws.com.cn",
        "kms.cn-northwest-1.amazonaws.com.cn",
        "vpce-1.kms.us-east-1.vpce.amazonaws.com",
        "vpce-0fe5b17a0707d6abc.kms.eu-west-1.vpce.amazonaws.com",
        "vpce-0fe5b17a0707d6abc-29p5708s.kms.us-east-1.vpce.amazonaws.com",
        "vpce-0fe5b17a0707d6abc-29p5708s-us-east-1a.kms.us-east-1.vpce.amazonaws.com",
        "vpce-0fe5b17a0707d6abc-29p5708s.kms-fips.us-east-1.vpce.amazonaws.com",
    ] {
        assert!(is_public_host(Aws, &e(legitimate)), "{legitimate}");
    }
    for port in [
        "kms.us-east-1.api.aws:8443",
        "kms.cn-north-1.amazonaws.com.cn:80",
    ] {
        assert!(!is_public_host(Aws, &e(port)), "{port}");
    }
    assert!(is_public_host(Azure, &e("X.vault.azure.net.")));
    assert!(is_public_host(Azure, &e("h.managedhsm.azure.net")));
    assert!(!is_public_host(Azure, &e("x.vault.azure.net.evil")));
    assert!(!is_public_host(Azure, &e("vault.azure.net")));
    assert!(!is_public_host(Azure, &e("xvault.azure.net")));
    assert!(is_public_host(Gcp, &e("cloudkms.googleapis.com:443")));
    assert!(is_public_host(
        Gcp,
        &e("cloudkms.us-east1.rep.googleapis.com")
    ));
    assert!(!is_public_host(Gcp, &e("oauth2.googleapis.com")));
    for ip in ["127.0.0.1", "127.1", "2130706433", "0x7f000001", "[::1]"] {
        assert!(e(ip).is_ip_literal(), "{ip}");
    }
    assert!(!e("a1.com").is_ip_literal());
}

#[test]
fn allowed_hosts_match_host_and_port() {
    let e = |s| Endpoint::parse(s, KeyDocument).unwrap();
    let mut a = AllowedHosts::default();
    a.allow("LocalHost:12345").unwrap();
    a.allow("127.0.0.1:9000").unwrap();
    a.allow("kms.example.com").unwrap();
    assert!(a.contains(&e("localhost:12345")));
    assert!(a.contains(&e("localhost.:12345")));
    assert!(!a.contains(&e("localhost:12346")));
    assert!(!a.contains(&e("localhost")));
    assert!(a.contains(&e("127.0.0.1:9000")));
    assert!(!a.contains(&e("127.1:9000")));
    assert!(!a.contains(&e("2130706433:9000")));
    assert!(a.contains(&e("kms.example.com:443")));
    assert!(a.contains(&e("kms.example.com")));
    assert!(!a.contains(&e("kms.example.com.evil")));
}

#[test]
fn allowed_hosts_are_scoped_to_a_provider_kind() {
    use ProviderKind::*;
    let e = |s| Endpoint::parse(s, KeyDocument).unwrap();
    let mut a = AllowedHosts::default();
    // Without a kind: the cloud providers, never KMIP.
    a.allow("kms.internal:8443").unwrap();
    for kind in [Aws, Azure, Gcp] {
        assert!(a.permits(kind, &e("kms.internal:8443")), "{kind:?}");
    }
    assert!(!a.permits(Kmip, &e("kms.internal:8443")));
    // With a kind: that kind only; a KMIP host's default port is 5696.
    a.allow_for(Kmip, "hsm.internal").unwrap();
    assert!(a.permits(Kmip, &e("hsm.internal:5696")));
    assert!(!a.permits(Kmip, &e("hsm.internal:443")));
    for kind in [Aws, Azure, Gcp, Local] {
        assert!(!a.permits(kind, &e("hsm.internal:5696")), "{kind:?}");
    }
    a.allow_for(Aws, "proxy.internal").unwrap();
    assert!(a.permits(Aws, &e("proxy.internal")));
    assert!(!a.permits(Azure, &e("proxy.internal")));
    assert!(!a.permits(Kmip, &e("proxy.internal:443")));
    assert!(a.contains(&e("proxy.internal")));
    assert!(a.allow_for(Local, "x.internal").is_err());
    assert!(a.allow_for(Kmip, "https://hsm.internal").is_err());
}
