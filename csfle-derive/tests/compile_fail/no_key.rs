use csfle::Encrypted;
use serde::Serialize;

#[derive(Serialize, Encrypted)]
struct Patient {
    name: String,
    #[encrypted(deterministic)]
    ssn: String,
}

fn main() {}
