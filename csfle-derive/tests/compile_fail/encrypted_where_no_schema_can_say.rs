use csfle::Encrypted;
use serde::Serialize;

#[derive(Serialize, Encrypted)]
enum Contact {
    Phone {
        #[encrypted(random)]
        number: String,
    },
    None,
}

#[derive(Serialize, Encrypted)]
struct Ssn(#[encrypted(deterministic)] String);

#[derive(Serialize, Encrypted)]
#[serde(transparent)]
struct Secret {
    #[encrypted(random)]
    value: String,
}

#[derive(Serialize, Encrypted)]
#[encrypted(key = "k")]
enum Keyed {
    A,
}

fn main() {}
