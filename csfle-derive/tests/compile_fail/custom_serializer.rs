use csfle::Encrypted;
use serde::Serialize;

mod as_millis {
    pub fn serialize<S: serde::Serializer>(v: &String, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(v.len() as i64)
    }
}

#[derive(Serialize, Encrypted)]
#[encrypted(key = "k")]
struct Patient {
    #[serde(with = "as_millis")]
    #[encrypted(deterministic)]
    admitted: String,
    // Named: fine.
    #[serde(serialize_with = "as_millis::serialize")]
    #[encrypted(deterministic, bson_type = "long")]
    discharged: String,
}

fn main() {}
