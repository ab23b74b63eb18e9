use csfle::Encrypted;
use serde::Serialize;

#[derive(Serialize)]
struct NotDerived {
    a: String,
}

#[derive(Serialize, Encrypted)]
#[encrypted(key = "k")]
struct Patient {
    #[encrypted(random)]
    opaque: NotDerived,
}

fn main() {}
