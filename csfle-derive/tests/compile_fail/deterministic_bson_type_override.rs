use csfle::Encrypted;
use serde::Serialize;

#[derive(Serialize, Encrypted)]
#[encrypted(key = "k")]
struct Patient {
    #[encrypted(deterministic, bson_type = "double")]
    score: String,
}

fn main() {}
