use csfle::Encrypted;
use serde::Serialize;

#[derive(Serialize, Encrypted)]
#[encrypted(key = "k")]
struct OnField {
    #[encrypted(determinstic)]
    ssn: String,
}

#[derive(Serialize, Encrypted)]
#[encrypted(keyid = "k")]
struct OnType {
    name: String,
}

fn main() {}
