use csfle::Encrypted;
use serde::Serialize;

#[derive(Serialize, Encrypted)]
struct Patient {
    #[encrypted(queryable = "equality", key_alt_name = "a")]
    score: f64,
    #[encrypted(queryable = "range", key_alt_name = "b")]
    name: String,
    #[encrypted(queryable = "none", key_alt_name = "c")]
    stamp: bson::Timestamp,
    #[encrypted(queryable = "range", key_alt_name = "d", min = 0, max = 3000000000)]
    small: i32,
    #[encrypted(queryable = "range", key_alt_name = "e", min = 0.5, max = 2.5)]
    count: i64,
    #[encrypted(queryable = "range", key_alt_name = "f", min = 0.5, max = 2.5)]
    ratio: f64,
    #[encrypted(queryable = "range", key_alt_name = "g", min = 0, max = 10, precision = 2)]
    level: i32,
    #[encrypted(queryable = "range", key_alt_name = "h", trim_factor = 32)]
    tiny: i32,
    #[encrypted(queryable = "equality", key_alt_name = "i")]
    maybe: Option<String>,
}

fn main() {}
