use csfle::Encrypted;
use serde::Serialize;

#[derive(Serialize, Clone)]
struct Stored {
    ssn: String,
}

impl From<Patient> for Stored {
    fn from(p: Patient) -> Self {
        Stored { ssn: p.ssn }
    }
}

#[derive(Clone, Serialize, Encrypted)]
#[serde(into = "Stored")]
#[encrypted(key = "k")]
struct Patient {
    #[encrypted(deterministic)]
    ssn: String,
}

mod other {
    pub struct Visit {
        pub room: String,
    }
}

#[derive(Serialize, Encrypted)]
#[serde(remote = "other::Visit")]
#[encrypted(key = "k")]
struct VisitDef {
    #[encrypted(deterministic)]
    room: String,
}

fn main() {}
