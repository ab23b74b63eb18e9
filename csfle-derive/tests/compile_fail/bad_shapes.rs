use csfle::Encrypted;
use serde::Serialize;

#[derive(Serialize, Encrypted)]
#[encrypted(key = "k")]
struct Generic<T> {
    #[encrypted(random)]
    value: T,
}

#[derive(Encrypted)]
union Raw {
    a: u32,
    b: f32,
}

#[derive(Serialize, Encrypted)]
#[encrypted(key = "k")]
struct BadValues {
    #[encrypted(random, key_pointer = "tenant")]
    notes: String,
    #[encrypted(random, bson_type = "varchar")]
    name: String,
    #[encrypted(random, key = "")]
    empty: String,
}

fn main() {}
