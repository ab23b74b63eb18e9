//! AEAD_AES_256_CBC_HMAC_SHA_512 as libmongocrypt implements it for FLE1
//! (draft-mcgrew-aead-aes-cbc-hmac-sha2-05 §5.4 with a 96-byte key whose last
//! 32 bytes key the deterministic IV derivation).
//!
//! ```text
//! ciphertext = IV(16) ‖ AES-256-CBC-PKCS7(Ke, IV, P) ‖ T(32)
//! T          = HMAC-SHA-512(Km, A ‖ IV ‖ C ‖ AL)[0..32]
//! det IV     = HMAC-SHA-512(Kiv, A ‖ AL ‖ P)[0..16]
//! AL         = bit length of A, big-endian u64
//! ```

use super::hmac_lanes::{HmacJob, hmac_sha512_many, hmac_sha512_states};
use super::{DataKey, Error, rng};
use aes::Aes256Enc;
use cbc::cipher::block_padding::{Padding, Pkcs7};
use cbc::cipher::{BlockCipherDecrypt, BlockModeDecrypt, BlockModeEncrypt, InnerIvInit};
use hmac::Mac;
use subtle::ConstantTimeEq;

/// Length of the CBC IV prepended to every ciphertext.
pub(crate) const IV_LEN: usize = 16;
/// Length of the truncated HMAC-SHA-512 tag appended to every ciphertext.
pub(crate) const TAG_LEN: usize = 32;
/// AES block length.
const BLOCK_LEN: usize = 16;
/// The shortest valid ciphertext: IV, one padded block, tag.
pub(crate) const MIN_CIPHERTEXT_LEN: usize = IV_LEN + BLOCK_LEN + TAG_LEN;

/// Length of the ciphertext (IV ‖ C ‖ T) for a plaintext of `plaintext_len` bytes.
pub(crate) const fn ciphertext_len(plaintext_len: usize) -> usize {
    IV_LEN + (plaintext_len / BLOCK_LEN + 1) * BLOCK_LEN + TAG_LEN
}

/// How the IV is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IvMode {
    /// Derived from the IV key, the associated data and the plaintext.
    Deterministic,
    /// From the process CSPRNG.
    Random,
    /// Supplied by the test: known-answer vectors only. Not compiled
    /// outside this crate's unit tests, so no build can encrypt data with a
    /// chosen IV.
    #[cfg(test)]
    Given([u8; IV_LEN]),
}

fn aad_bit_len(aad: &[u8]) -> [u8; 8] {
    // An AAD long enough to overflow this cannot exist in memory.
    ((aad.len() as u64) * 8).to_be_bytes()
}

/// Encrypts `plaintext` and appends IV ‖ C ‖ T to `out`.
pub(crate) fn seal(
    key: &DataKey,
    mode: IvMode,
    aad: &[u8],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    if plaintext.is_empty() {
        return Err(Error::EmptyPlaintext);
    }
    let al = aad_bit_len(aad);
    let mut iv = [0u8; IV_LEN];
    match mode {
        IvMode::Deterministic => {
            let mut h = key.iv_mac.clone();
            h.update(aad);
            h.update(&al);
            h.update(plaintext);
            iv.copy_from_slice(&h.finalize().into_bytes()[..IV_LEN]);
        }
        IvMode::Random => rng::fill_random(&mut iv)?,
        #[cfg(test)]
        IvMode::Given(given) => iv = given,
    }

    let start = out.len();
    let padded_len = (plaintext.len() / BLOCK_LEN + 1) * BLOCK_LEN;
    out.reserve(IV_LEN + padded_len + TAG_LEN);
    out.extend_from_slice(&iv);
    out.resize(start + IV_LEN + padded_len, 0);
    let body = &mut out[start + IV_LEN..];
    body[..plaintext.len()].copy_from_slice(plaintext);
    // Cannot fail: `body` was sized for the padded plaintext above.
    cbc::Encryptor::<&Aes256Enc>::inner_iv_init(&key.enc, &iv.into())
        .encrypt_padded::<Pkcs7>(body, plaintext.len())
        .map_err(|_| Error::InvalidCiphertextLength { len: padded_len })?;

    let tag = tag(key, aad, &out[start..], &al);
    out.extend_from_slice(&tag);
    Ok(())
}

fn tag(key: &DataKey, aad: &[u8], iv_and_body: &[u8], al: &[u8; 8]) -> [u8; TAG_LEN] {
    let mut h = key.mac.clone();
    h.update(aad);
    h.update(iv_and_body);
    h.update(al);
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&h.finalize().into_bytes()[..TAG_LEN]);
    t
}

/// Verifies and decrypts IV ‖ C ‖ T, appending the plaintext to `out`.
///
/// The tag is checked in constant time before any decryption happens.
pub(crate) fn open(
    key: &DataKey,
    aad: &[u8],
    ciphertext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    check_length(ciphertext)?;
    let (iv_and_body, received_tag) = ciphertext.split_at(ciphertext.len() - TAG_LEN);
    let expected = tag(key, aad, iv_and_body, &aad_bit_len(aad));
    if !tags_equal(&expected, received_tag) {
        return Err(Error::MacMismatch);
    }
    open_verified(key, ciphertext, out)
}

/// Whether two tags are equal, in constant time: compared as four 64-bit
/// words (`subtle` fences each comparison; four of them rather than 32).
fn tags_equal(a: &[u8], b: &[u8]) -> bool {
    fn words(t: &[u8]) -> Option<[u64; TAG_LEN / 8]> {
        let t: &[u8; TAG_LEN] = t.try_into().ok()?;
        Some(core::array::from_fn(|i| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&t[8 * i..8 * i + 8]);
            u64::from_le_bytes(w)
        }))
    }
    match (words(a), words(b)) {
        (Some(a), Some(b)) => bool::from(a[..].ct_eq(&b[..])),
        _ => false,
    }
}

/// Whether the tag in an HMAC-SHA-512 digest (its first 32 bytes; the
/// digest given as its chaining value, eight big-endian words) equals
/// `received`, in constant time: four 64-bit words compared through
/// `subtle`, with no digest bytes made.
fn tag_matches(digest: &[u64; 8], received: &[u8]) -> bool {
    let Ok(received) = <&[u8; TAG_LEN]>::try_from(received) else {
        return false;
    };
    let words: [u64; TAG_LEN / 8] = core::array::from_fn(|i| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&received[8 * i..8 * i + 8]);
        u64::from_be_bytes(w)
    });
    bool::from(digest[..TAG_LEN / 8].ct_eq(&words[..]))
}

/// IV ‖ C ‖ T must hold at least one AES block and whole blocks.
fn check_length(ciphertext: &[u8]) -> Result<(), Error> {
    let len = ciphertext.len();
    if len < MIN_CIPHERTEXT_LEN || !(len - IV_LEN - TAG_LEN).is_multiple_of(BLOCK_LEN) {
        return Err(Error::InvalidCiphertextLength { len });
    }
    Ok(())
}

/// One field to seal in a batch.
pub(crate) struct SealJob<'a> {
    pub(crate) key: &'a DataKey,
    pub(crate) mode: IvMode,
    pub(crate) aad: &'a [u8],
    pub(crate) plaintext: &'a [u8],
}

/// Seals every job, each exactly as [`seal`] would (same IVs for
/// deterministic jobs, same tags): the deterministic IVs and then the tags
/// are computed in lanes. Each job's result is its own.
pub(crate) fn seal_many(jobs: &[SealJob<'_>]) -> Vec<Result<Vec<u8>, Error>> {
    let als: Vec<[u8; 8]> = jobs.iter().map(|j| aad_bit_len(j.aad)).collect();
    // Deterministic IVs, in lanes.
    let det: Vec<usize> = (0..jobs.len())
        .filter(|&i| jobs[i].mode == IvMode::Deterministic && !jobs[i].plaintext.is_empty())
        .collect();
    let det_parts: Vec<[&[u8]; 3]> = det
        .iter()
        .map(|&i| [jobs[i].aad, &als[i][..], jobs[i].plaintext])
        .collect();
    let det_macs = hmac_sha512_many(
        &det.iter()
            .zip(&det_parts)
            .map(|(&i, parts)| HmacJob {
                pads: &jobs[i].key.iv_pads,
                message: parts,
            })
            .collect::<Vec<_>>(),
    );
    let mut det_ivs = det.iter().zip(det_macs);
    // IV ‖ C for each job.
    let mut bodies: Vec<Result<Vec<u8>, Error>> = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        if job.plaintext.is_empty() {
            bodies.push(Err(Error::EmptyPlaintext));
            continue;
        }
        let mut iv = [0u8; IV_LEN];
        match job.mode {
            IvMode::Deterministic => match det_ivs.next() {
                Some((&d, mac)) if d == i => iv.copy_from_slice(&mac[..IV_LEN]),
                // The IVs were computed for exactly these jobs, in order.
                _ => {
                    bodies.push(Err(Error::EmptyPlaintext));
                    continue;
                }
            },
            IvMode::Random => {
                if let Err(e) = rng::fill_random(&mut iv) {
                    bodies.push(Err(e));
                    continue;
                }
            }
            #[cfg(test)]
            IvMode::Given(given) => iv = given,
        }
        let padded_len = (job.plaintext.len() / BLOCK_LEN + 1) * BLOCK_LEN;
        let mut out = Vec::with_capacity(IV_LEN + padded_len + TAG_LEN);
        out.extend_from_slice(&iv);
        out.resize(IV_LEN + padded_len, 0);
        out[IV_LEN..IV_LEN + job.plaintext.len()].copy_from_slice(job.plaintext);
        let sealed = cbc::Encryptor::<&Aes256Enc>::inner_iv_init(&job.key.enc, &iv.into())
            .encrypt_padded::<Pkcs7>(&mut out[IV_LEN..], job.plaintext.len())
            .map(|_| ())
            .map_err(|_| Error::InvalidCiphertextLength { len: padded_len });
        bodies.push(sealed.map(|()| out));
    }
    // Tags, in lanes.
    let sealed: Vec<usize> = (0..jobs.len()).filter(|&i| bodies[i].is_ok()).collect();
    let tag_parts: Vec<[&[u8]; 3]> = sealed
        .iter()
        .map(|&i| {
            let body = bodies[i].as_deref().unwrap_or_default();
            [jobs[i].aad, body, &als[i][..]]
        })
        .collect();
    let tags = hmac_sha512_many(
        &sealed
            .iter()
            .zip(&tag_parts)
            .map(|(&i, parts)| HmacJob {
                pads: &jobs[i].key.mac_pads,
                message: parts,
            })
            .collect::<Vec<_>>(),
    );
    drop(tag_parts);
    for (&i, tag) in sealed.iter().zip(tags) {
        if let Ok(body) = &mut bodies[i] {
            body.extend_from_slice(&tag[..TAG_LEN]);
        }
    }
    bodies
}

/// Below this many messages, [`verify_framed`] hashes one at a time: the
/// lanes' setup costs more than they save (`benches/bulk_decrypt.rs`, the
/// table of documents by number of encrypted fields, BENCHMARKS.md).
pub(crate) const LANES_FROM_MESSAGES: usize = 4;

/// One FLE1 payload to verify as stored: A ‖ IV ‖ C ‖ T, A being its first
/// `aad_len` bytes (so the MAC's message is one slice and AL).
pub(crate) struct FramedJob<'a> {
    pub(crate) key: &'a DataKey,
    pub(crate) payload: &'a [u8],
    pub(crate) aad_len: usize,
}

/// One [`FramedJob`]'s length and tag, with `sha2`'s HMAC.
pub(crate) fn verify_framed_one(job: &FramedJob<'_>) -> Result<(), Error> {
    let Some(ciphertext) = job.payload.get(job.aad_len..) else {
        return Err(Error::InvalidCiphertextLength { len: 0 });
    };
    check_length(ciphertext)?;
    let aad = &job.payload[..job.aad_len];
    let (iv_and_body, received) = ciphertext.split_at(ciphertext.len() - TAG_LEN);
    let al = ((job.aad_len as u64) * 8).to_be_bytes();
    if tags_equal(&tag(job.key, aad, iv_and_body, &al), received) {
        Ok(())
    } else {
        Err(Error::MacMismatch)
    }
}

/// Checks the length and the tag of every job, eight or four at a time
/// (one at a time below [`LANES_FROM_MESSAGES`]): appends to `results`
/// what [`open`] would say of each before decrypting (the tag compared in
/// constant time).
pub(crate) fn verify_framed(jobs: &[FramedJob<'_>], results: &mut Vec<Result<(), Error>>) {
    let first = results.len();
    let mut checked = Vec::with_capacity(jobs.len());
    for (i, j) in jobs.iter().enumerate() {
        let r = match j.payload.get(j.aad_len..) {
            Some(c) => check_length(c),
            None => Err(Error::InvalidCiphertextLength { len: 0 }),
        };
        if r.is_ok() {
            checked.push(i);
        }
        results.push(r);
    }
    if checked.len() < LANES_FROM_MESSAGES || !super::hmac_lanes::lanes_available() {
        // Too few to fill lanes: `sha2`'s own HMAC, one message at a time.
        for &i in &checked {
            results[first + i] = verify_framed_one(&jobs[i]);
        }
        return;
    }
    let als: Vec<[u8; 8]> = checked
        .iter()
        .map(|&i| ((jobs[i].aad_len as u64) * 8).to_be_bytes())
        .collect();
    // The MAC's message: A ‖ IV ‖ C (the payload without its tag, which
    // the length check guarantees), then AL.
    let parts: Vec<[&[u8]; 2]> = checked
        .iter()
        .zip(&als)
        .map(|(&i, al)| {
            let p = jobs[i].payload;
            [&p[..p.len() - TAG_LEN], &al[..]]
        })
        .collect();
    let hmacs: Vec<HmacJob<'_>> = checked
        .iter()
        .zip(&parts)
        .map(|(&i, message)| HmacJob {
            pads: &jobs[i].key.mac_pads,
            message,
        })
        .collect();
    let mut digests = Vec::with_capacity(hmacs.len());
    hmac_sha512_states(&hmacs, &mut digests);
    for (&i, digest) in checked.iter().zip(&digests) {
        let p = jobs[i].payload;
        if !tag_matches(digest, &p[p.len() - TAG_LEN..]) {
            results[first + i] = Err(Error::MacMismatch);
        }
    }
}

/// Decrypts IV ‖ C ‖ T whose tag [`verify_framed`] accepted, appending the
/// plaintext to `out`. Never call it on a ciphertext that was not verified.
pub(crate) fn open_verified(
    key: &DataKey,
    ciphertext: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    check_length(ciphertext)?;
    let len = ciphertext.len();
    let (iv, rest) = ciphertext.split_at(IV_LEN);
    let body = &rest[..rest.len() - TAG_LEN];
    let start = out.len();
    out.extend_from_slice(body);
    let iv: [u8; IV_LEN] = iv
        .try_into()
        .map_err(|_| Error::InvalidCiphertextLength { len })?;
    let plain_len = cbc::Decryptor::<&aes::Aes256Dec>::inner_iv_init(&key.dec, &iv.into())
        .decrypt_padded::<Pkcs7>(&mut out[start..])
        .map_err(|_| Error::BadPadding)?
        .len();
    out.truncate(start + plain_len);
    if plain_len == 0 {
        return Err(Error::EmptyPlaintext);
    }
    Ok(())
}

/// Decrypts ciphertexts (IV ‖ C ‖ T each) whose tags [`verify_framed`]
/// accepted, all under `key`: appends every plaintext to `out` and pushes
/// to `results`, for each ciphertext in order, where in `out` its
/// plaintext is, or what [`open_verified`] would say of it (length,
/// padding, empty plaintext). Never call it on ciphertexts that were not
/// verified.
///
/// One AES call decrypts every block of every ciphertext: CBC decryption
/// is parallel, so the cipher's parallel blocks (eight with AES-NI, more
/// with VAES) run across values, and the per-call set-up of its VAES
/// backends (the round keys broadcast into wide registers) is paid once
/// per call instead of once per value. `out` should have room for the
/// ciphertexts' lengths: growing it would leave a copy of the plaintexts
/// already in it behind.
pub(crate) fn open_verified_many(
    key: &DataKey,
    ciphertexts: &[&[u8]],
    out: &mut Vec<u8>,
    results: &mut Vec<Result<std::ops::Range<usize>, Error>>,
) {
    out.reserve(ciphertexts.iter().map(|c| c.len()).sum());
    let base = out.len();
    let first = results.len();
    // The bodies C, one after another: whole blocks each (checked).
    for c in ciphertexts {
        let r = check_length(c).map(|()| {
            let start = out.len();
            out.extend_from_slice(&c[IV_LEN..c.len() - TAG_LEN]);
            start..out.len()
        });
        results.push(r);
    }
    let (blocks, _) = aes::Block::slice_as_chunks_mut(&mut out[base..]);
    key.dec.decrypt_blocks(blocks);
    for (c, r) in ciphertexts.iter().zip(&mut results[first..]) {
        let range = match r {
            Ok(range) => range.clone(),
            Err(_) => continue,
        };
        let body = &mut out[range.clone()];
        // CBC: P_k = D(C_k) ⊕ C_k−1, with C_0 the IV: each decrypted
        // block XORed with the ciphertext block before it.
        let previous = &c[..c.len() - TAG_LEN - BLOCK_LEN];
        body.iter_mut().zip(previous).for_each(|(b, p)| *b ^= p);
        // PKCS#7, as `cbc`'s `decrypt_padded` checks it (after the tag:
        // only a key holder can produce bad padding).
        let kept = match <Pkcs7 as Padding>::raw_unpad(&body[body.len() - BLOCK_LEN..]) {
            Ok(kept) => kept.len(),
            Err(_) => {
                *r = Err(Error::BadPadding);
                continue;
            }
        };
        let len = range.len() - BLOCK_LEN + kept;
        *r = if len == 0 {
            Err(Error::EmptyPlaintext)
        } else {
            Ok(range.start..range.start + len)
        };
    }
}

#[cfg(test)]
#[path = "aead_tests.rs"]
mod tests;
