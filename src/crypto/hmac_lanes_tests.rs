use super::*;
use proptest::prelude::*;

fn hmac_reference(key: &[u8], parts: &[Vec<u8>]) -> [u8; 64] {
    use hmac::{KeyInit, Mac};
    let mut h = hmac::Hmac::<sha2::Sha512>::new_from_slice(key).unwrap();
    for p in parts {
        h.update(p);
    }
    h.finalize().into_bytes().into()
}

/// The capacity reserved up front is what `push_padded` appends, at
/// every length around the block and padding boundaries: the block
/// buffer never grows (a grown buffer would leave an unwiped copy).
#[test]
fn padded_blocks_counts_what_push_padded_appends() {
    let data = vec![0x5a_u8; 600];
    for len in 0..=520 {
        for split in [0, len / 2, len] {
            let parts: [&[u8]; 2] = [&data[..split], &data[split..len]];
            let mut out = Vec::new();
            let range = push_padded(&parts, &mut out);
            assert_eq!(range.len(), padded_blocks(&parts), "length {len}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// Any number of messages of any lengths, split anywhere, under
    /// keys of any length up to a block: equal to RustCrypto's HMAC.
    #[test]
    fn hmac_many_equals_hmac(
        jobs in proptest::collection::vec(
            (
                proptest::collection::vec(any::<u8>(), 0..=128),
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..4),
            ),
            0..14,
        )
    ) {
        let pads: Vec<HmacPads> = jobs.iter().map(|(k, _)| HmacPads::new(k)).collect();
        let parts: Vec<Vec<&[u8]>> = jobs
            .iter()
            .map(|(_, m)| m.iter().map(|p| p.as_slice()).collect())
            .collect();
        let batch: Vec<HmacJob<'_>> = pads
            .iter()
            .zip(&parts)
            .map(|(pads, message)| HmacJob { pads, message })
            .collect();
        let got = hmac_sha512_many(&batch);
        prop_assert_eq!(got.len(), jobs.len());
        for ((k, m), g) in jobs.iter().zip(&got) {
            prop_assert_eq!(*g, hmac_reference(k, m));
        }
    }
}

/// Batches of every size around the lane counts and the chunk (a
/// final group of one, two or three messages; lanes past the last
/// message), messages of one and several blocks mixed, several keys:
/// equal to RustCrypto's HMAC, and the digests' words are their bytes.
#[test]
fn batches_of_every_size_equal_hmac() {
    let keys: Vec<Vec<u8>> = (0..3u8).map(|k| vec![k.wrapping_mul(91); 32]).collect();
    let pads: Vec<HmacPads> = keys.iter().map(|k| HmacPads::new(k)).collect();
    for n in [1usize, 2, 3, 4, 5, 6, 7, 8, 9, 31, 32, 33, 35, 70] {
        let messages: Vec<Vec<u8>> = (0..n)
            .map(|i| (0..(i * 37) % 260).map(|b| (b ^ i) as u8).collect())
            .collect();
        let parts: Vec<[&[u8]; 1]> = messages.iter().map(|m| [m.as_slice()]).collect();
        let batch: Vec<HmacJob<'_>> = parts
            .iter()
            .enumerate()
            .map(|(i, message)| HmacJob {
                pads: &pads[i % pads.len()],
                message,
            })
            .collect();
        let mut states = Vec::new();
        hmac_sha512_states(&batch, &mut states);
        assert_eq!(states.len(), n);
        let bytes = hmac_sha512_many(&batch);
        for (i, (m, s)) in messages.iter().zip(&states).enumerate() {
            let want = hmac_reference(&keys[i % keys.len()], std::slice::from_ref(m));
            assert_eq!(digest_bytes(s), want, "{n} messages, message {i}");
            assert_eq!(bytes[i], want);
        }
    }
}
