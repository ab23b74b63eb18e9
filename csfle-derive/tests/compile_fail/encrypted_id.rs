use csfle::Encrypted;
use serde::Serialize;

#[derive(Serialize, Encrypted)]
#[encrypted(key = "k")]
struct Patient {
    #[serde(rename = "_id")]
    #[encrypted(deterministic)]
    id: String,
}

fn main() {}
