use csfle::Encrypted;
use serde::Serialize;

fn never(_: &Option<String>) -> bool {
    false
}

#[derive(Serialize, Encrypted)]
#[encrypted(key = "k")]
struct Patient {
    #[encrypted(random)]
    nickname: Option<String>,
    #[serde(skip_serializing_if = "never")]
    #[encrypted(deterministic)]
    maiden_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[encrypted(random)]
    fine: Option<String>,
}

fn main() {}
