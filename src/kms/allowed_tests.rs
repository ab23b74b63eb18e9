use super::*;
use bson::doc;

fn mk(d: Document) -> MasterKey {
    MasterKey::from_document(&d).unwrap()
}

#[test]
fn listed_master_keys_and_nothing_else() {
    let arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let mut list = AllowedMasterKeys::default();
    assert!(list.permits(&mk(doc! {"provider": "local"})), "no list");
    list.allow(&doc! {"provider": "aws", "region": "us-east-1", "key": arn})
        .unwrap();
    list.allow(&doc! {
        "provider": "azure",
        "keyVaultEndpoint": "https://Vault.vault.azure.net/",
        "keyName": "csfle",
    })
    .unwrap();
    list.allow(&doc! {
        "provider": "gcp:prod", "projectId": "p", "location": "global",
        "keyRing": "r", "keyName": "k", "keyVersion": "3",
    })
    .unwrap();
    list.allow(&doc! {"provider": "local:backup"}).unwrap();
    assert!(list.is_enabled());
    for allowed in [
        doc! {"provider": "aws", "region": "us-east-1", "key": arn},
        doc! {
            "provider": "aws", "region": "us-east-1", "key": arn,
            "endpoint": "KMS.us-east-1.amazonaws.com.:443",
        },
        doc! {"provider": "azure", "keyVaultEndpoint": "vault.vault.azure.net", "keyName": "csfle"},
        doc! {
            "provider": "azure", "keyVaultEndpoint": "vault.vault.azure.net:443",
            "keyName": "csfle", "keyVersion": "0123abcd",
        },
        doc! {
            "provider": "gcp:prod", "projectId": "p", "location": "global",
            "keyRing": "r", "keyName": "k", "keyVersion": "3",
            "endpoint": "cloudkms.googleapis.com",
        },
        doc! {"provider": "local:backup"},
    ] {
        assert!(list.permits(&mk(allowed.clone())), "{allowed}");
    }
    for refused in [
        // The attacker's key, account, region or alias.
        doc! {"provider": "aws", "region": "us-east-1",
        "key": "arn:aws:kms:us-east-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
        doc! {"provider": "aws", "region": "us-east-1", "key": "alias/app"},
        doc! {"provider": "aws", "region": "us-west-2", "key": arn},
        doc! {"provider": "aws", "region": "us-east-1", "key": arn,
        "endpoint": "kms-fips.us-east-1.amazonaws.com"},
        doc! {"provider": "aws:prod", "region": "us-east-1", "key": arn},
        // Another vault, key, or host spelling that is another host.
        doc! {"provider": "azure", "keyVaultEndpoint": "attacker.vault.azure.net", "keyName": "csfle"},
        doc! {"provider": "azure", "keyVaultEndpoint": "vault.vault.azure.net", "keyName": "other"},
        doc! {"provider": "azure", "keyVaultEndpoint": "vault.vault.azure.net:8443", "keyName": "csfle"},
        doc! {"provider": "azure:other", "keyVaultEndpoint": "vault.vault.azure.net", "keyName": "csfle"},
        // A listed keyVersion is required as listed.
        doc! {
            "provider": "gcp:prod", "projectId": "p", "location": "global",
            "keyRing": "r", "keyName": "k",
        },
        doc! {
            "provider": "gcp:prod", "projectId": "p", "location": "global",
            "keyRing": "r", "keyName": "k", "keyVersion": "4",
        },
        doc! {
            "provider": "gcp:prod", "projectId": "attacker", "location": "global",
            "keyRing": "r", "keyName": "k", "keyVersion": "3",
        },
        doc! {
            "provider": "gcp:prod", "projectId": "p", "location": "global",
            "keyRing": "r", "keyName": "k", "keyVersion": "3",
            "endpoint": "cloudkms.us-east1.rep.googleapis.com",
        },
        // Local keys are listed by name too.
        doc! {"provider": "local"},
        doc! {"provider": "local:other"},
    ] {
        assert!(!list.permits(&mk(refused.clone())), "{refused}");
    }
}

#[test]
fn malformed_entries_are_refused() {
    let mut list = AllowedMasterKeys::default();
    for bad in [
        doc! {"region": "us-east-1", "key": "k"},
        doc! {"provider": 1},
        doc! {"provider": "nope"},
        doc! {"provider": "aws", "region": "us-east-1"},
        doc! {"provider": "aws", "region": "us-east-1", "key": "k", "regoin": "x"},
        doc! {"provider": "azure", "keyVaultEndpoint": "http://v.vault.azure.net", "keyName": "k"},
    ] {
        assert!(list.allow(&bad).is_err(), "{bad}");
    }
    assert!(!list.is_enabled());
}

#[test]
fn descriptions_are_printable() {
    let m = mk(doc! {"provider": "aws", "region": "us-east-1", "key": "a\u{7}\nb\u{e9}"});
    let d = describe(&m);
    assert!(d.chars().all(|c| c.is_ascii_graphic() || c == ' '), "{d}");
    assert!(d.contains("us-east-1"), "{d}");
}
