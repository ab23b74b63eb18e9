use csfle::Encrypted;
use serde::Serialize;

#[derive(Serialize, Encrypted)]
struct MinAlone {
    #[encrypted(queryable = "range", key_alt_name = "j", min = 0)]
    age: i32,
}

#[derive(Serialize, Encrypted)]
struct MinNotBelowMax {
    #[encrypted(queryable = "range", key_alt_name = "k", min = 5, max = 5)]
    age: i32,
}

#[derive(Serialize, Encrypted)]
struct PrecisionAlone {
    #[encrypted(queryable = "range", key_alt_name = "l", precision = 2)]
    weight: f64,
}

#[derive(Serialize, Encrypted)]
struct TrimFactorTooLarge {
    #[encrypted(queryable = "range", key_alt_name = "m", min = 0, max = 3, trim_factor = 2)]
    level: i32,
}

#[derive(Serialize, Encrypted)]
struct SparsityTooLarge {
    #[encrypted(queryable = "range", key_alt_name = "n", sparsity = 5)]
    age: i32,
}

#[derive(Serialize, Encrypted)]
struct Suffix {
    #[encrypted(queryable = "range", key_alt_name = "o", min = 0i64, max = 10)]
    count: i64,
}

#[derive(Serialize, Encrypted)]
struct RangeOptionOnEquality {
    #[encrypted(queryable = "equality", key_alt_name = "e", min = 0)]
    age: i32,
}

#[derive(Serialize, Encrypted)]
struct ContentionOnUnindexed {
    #[encrypted(queryable = "none", key_alt_name = "f", contention = 2)]
    notes: String,
}

#[derive(Serialize, Encrypted)]
struct DottedName {
    #[serde(rename = "a.b")]
    #[encrypted(queryable = "none", key_alt_name = "q")]
    ab: String,
}

#[derive(Serialize, Encrypted)]
struct EncryptedId {
    #[serde(rename = "_id")]
    #[encrypted(queryable = "equality", key_alt_name = "r")]
    id: String,
}

fn main() {}
