use hmac::{Hmac, Mac, KeyInit};
use sha2::Sha512;
use std::time::Instant;
fn main() {
    let key = csfle::DataKey::new(csfle::KeyId::from_bytes([1; 16]), &[2; 96]).unwrap();
    let mut scratch = Vec::new();
    let blob = csfle::ciphertext::encrypt_value(&key, csfle::Algorithm::Deterministic, bson::RawBsonRef::String("value 0001"), &mut scratch).unwrap();
    let mut plain = Vec::new();
    let n = 200000;
    for round in 0..3 {
    let t = Instant::now();
    for _ in 0..n {
        let b = csfle::ciphertext::Fle1Blob::parse(&blob).unwrap();
        let v = csfle::ciphertext::decrypt_value(&key, &b, &mut plain, &mut scratch).unwrap();
        std::hint::black_box(v);
    }
    println!("{round} csfle  {:?}/op", t.elapsed() / n);
    let mac = <Hmac<Sha512> as KeyInit>::new_from_slice(&[2; 32]).unwrap();
    let t = Instant::now();
    for _ in 0..n {
        let mut m = mac.clone();
        m.update(&blob[..18]); m.update(&blob[18..blob.len()-32]); m.update(&[0,0,0,0,0,0,0,144]);
        std::hint::black_box(m.finalize().into_bytes());
    }
    println!("{round} hmac   {:?}/op", t.elapsed() / n);
    }
}
