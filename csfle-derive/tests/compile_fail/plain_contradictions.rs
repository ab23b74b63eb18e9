use csfle::Encrypted;
use serde::Serialize;

#[derive(Serialize, Encrypted)]
#[encrypted(key = "k")]
struct Patient {
    #[encrypted(plain, random)]
    ssn: String,
}

fn main() {}
