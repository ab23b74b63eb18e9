use csfle::Encrypted;

// serde_derive itself panics on these names under camelCase (its
// PascalCase form starts with a non-ASCII character, or is empty), so the
// schema has no name to give either.
#[derive(Encrypted)]
#[encrypted(key = "k")]
#[serde(rename_all = "camelCase")]
struct Patient {
    #[encrypted(deterministic)]
    ärger: String,
    #[encrypted(deterministic)]
    __: String,
}

fn main() {}
