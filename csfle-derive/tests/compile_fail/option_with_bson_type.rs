use csfle::Encrypted;
use serde::Serialize;

#[derive(Serialize, Encrypted)]
#[encrypted(key = "k")]
struct Patient {
    #[encrypted(random, bson_type = "string")]
    address: Option<std::net::Ipv4Addr>,
}

fn main() {}
