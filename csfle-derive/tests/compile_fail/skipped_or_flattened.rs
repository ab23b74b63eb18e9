use csfle::Encrypted;
use serde::Serialize;
use std::collections::HashMap;

#[derive(Serialize, Encrypted)]
#[encrypted(key = "k")]
struct Patient {
    #[serde(skip)]
    #[encrypted(random)]
    secret: String,
    #[serde(flatten)]
    #[encrypted(random)]
    extra: HashMap<String, String>,
}

fn main() {}
