use csfle::Encrypted;
use serde::Serialize;

#[derive(Serialize, Encrypted)]
#[encrypted(key = "k")]
struct Nested {
    a: String,
}

#[derive(Serialize, Encrypted)]
#[encrypted(key = "k")]
struct Patient {
    #[encrypted(deterministic)]
    score: f64,
    #[encrypted(deterministic)]
    active: bool,
    #[encrypted(deterministic)]
    tags: Vec<String>,
    #[encrypted(deterministic)]
    nested: Nested,
    #[encrypted(deterministic)]
    price: bson::Decimal128,
    #[encrypted(deterministic)]
    raw: bson::Document,
}

fn main() {}
