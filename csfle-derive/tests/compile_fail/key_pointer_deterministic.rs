use csfle::Encrypted;
use serde::Serialize;

#[derive(Serialize, Encrypted)]
struct Patient {
    #[encrypted(deterministic, key_pointer = "/tenant")]
    ssn: String,
    tenant: String,
}

fn main() {}
