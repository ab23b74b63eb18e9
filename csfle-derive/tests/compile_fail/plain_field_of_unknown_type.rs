use csfle::Encrypted;
use serde::Serialize;

/// A type csfle knows nothing about: it might hold encrypted fields.
#[derive(Serialize)]
struct Point {
    x: f64,
    y: f64,
}

#[derive(Serialize, Encrypted)]
#[encrypted(key = "k")]
struct Patient {
    #[encrypted(deterministic)]
    ssn: String,
    location: Point,
    history: Vec<Point>,
    // Declared plain: fine.
    #[encrypted(plain)]
    home: Point,
}

fn main() {}
