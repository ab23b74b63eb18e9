use csfle::Encrypted;
use serde::Serialize;

#[derive(Serialize, Encrypted)]
struct Mixed {
    #[encrypted(random, key = "k")]
    notes: String,
    #[encrypted(queryable = "equality", key_alt_name = "a")]
    ssn: String,
}

#[derive(Serialize, Encrypted)]
struct BothSchemes {
    #[encrypted(random, queryable = "none", key_alt_name = "b")]
    notes: String,
}

#[derive(Serialize, Encrypted)]
struct UnknownQueryType {
    #[encrypted(queryable = "prefix", key_alt_name = "c")]
    name: String,
}

#[derive(Serialize, Encrypted)]
struct NoKey {
    #[encrypted(queryable = "equality")]
    ssn: String,
}

#[derive(Serialize, Encrypted)]
#[encrypted(key = "k")]
struct TypeKey {
    #[encrypted(queryable = "equality", key_alt_name = "e")]
    ssn: String,
}

#[derive(Serialize, Encrypted)]
struct KeyPointer {
    #[encrypted(queryable = "none", key_pointer = "/h")]
    notes: String,
}

#[derive(Serialize, Encrypted)]
struct KeyIdNotUuid {
    #[encrypted(queryable = "none", key_id = "not-a-uuid")]
    notes: String,
}

#[derive(Serialize, Encrypted)]
struct ContentionOnFle1 {
    #[encrypted(random, key = "p", contention = 2)]
    notes: String,
}

fn main() {}
