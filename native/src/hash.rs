//! RFC 9380 expand_message_xmd with SHA-512, and the hashes RFC 9497 builds on it.

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};

/// s_in_bytes of SHA-512 (RFC 9380, section 5.3.1).
const BLOCK: usize = 128;
/// b_in_bytes of SHA-512.
const OUT: usize = 64;

/// The reasons expand_message_xmd refuses its parameters (RFC 9380, section 5.3.1).
#[derive(Debug)]
pub struct XmdError;

/// `len` uniform bytes: RFC 9380, section 5.3.1, with H = SHA-512.
pub fn expand_message_xmd(msg: &[u8], dst: &[u8], len: usize) -> Result<Vec<u8>, XmdError> {
    let ell = len.div_ceil(OUT);
    if ell > 255 || len > 65535 || dst.len() > 255 {
        return Err(XmdError);
    }
    let dst_len = [dst.len() as u8];
    let mut h0 = Sha512::new();
    h0.update([0u8; BLOCK]);
    h0.update(msg);
    h0.update((len as u16).to_be_bytes());
    h0.update([0u8]);
    h0.update(dst);
    h0.update(dst_len);
    let b_0: [u8; OUT] = h0.finalize().into();
    let mut out = Vec::with_capacity(ell * OUT);
    let mut b_i = [0u8; OUT];
    for i in 1..=ell {
        let mut mixed = b_0;
        if i > 1 {
            for (m, b) in mixed.iter_mut().zip(b_i.iter()) {
                *m ^= b;
            }
        }
        let mut h = Sha512::new();
        h.update(mixed);
        h.update([i as u8]);
        h.update(dst);
        h.update(dst_len);
        b_i = h.finalize().into();
        out.extend_from_slice(&b_i);
    }
    out.truncate(len);
    Ok(out)
}

/// expand_message_xmd to 64 bytes for one domain, with the Z_pad block absorbed once.
///
/// With 64 output bytes ell = 1, so each message costs two SHA-512 calls; the first
/// always starts with the same 128-byte block, whose state is cloned per message.
#[derive(Clone)]
pub struct Xmd64 {
    zpad: Sha512,
    msg_suffix: Vec<u8>,
    b1_suffix: Vec<u8>,
}

impl Xmd64 {
    /// The expander for domain separation tag `dst` (at most 255 bytes).
    pub fn new(dst: &[u8]) -> Result<Self, XmdError> {
        if dst.len() > 255 {
            return Err(XmdError);
        }
        let mut dst_prime = dst.to_vec();
        dst_prime.push(dst.len() as u8);
        let mut zpad = Sha512::new();
        zpad.update([0u8; BLOCK]);
        let mut msg_suffix = vec![0u8, OUT as u8, 0u8];
        msg_suffix.extend_from_slice(&dst_prime);
        let mut b1_suffix = vec![1u8];
        b1_suffix.extend_from_slice(&dst_prime);
        Ok(Self { zpad, msg_suffix, b1_suffix })
    }

    /// expand_message_xmd(msg, dst, 64).
    pub fn expand(&self, msg: &[u8]) -> [u8; 64] {
        let mut h0 = self.zpad.clone();
        h0.update(msg);
        h0.update(&self.msg_suffix);
        let b_0 = h0.finalize();
        let mut h1 = Sha512::new();
        h1.update(b_0);
        h1.update(&self.b1_suffix);
        h1.finalize().into()
    }

    /// RFC 9497, section 4.1: HashToGroup, i.e. hash_to_ristretto255 of RFC 9380
    /// (appendix B): the one-way map of RFC 9496, section 4.3.4, on 64 uniform bytes.
    pub fn hash_to_group(&self, msg: &[u8]) -> RistrettoPoint {
        RistrettoPoint::from_uniform_bytes(&self.expand(msg))
    }

    /// RFC 9497, section 4.1: HashToScalar, 64 uniform bytes reduced modulo the order.
    pub fn hash_to_scalar(&self, msg: &[u8]) -> Scalar {
        Scalar::from_bytes_mod_order_wide(&self.expand(msg))
    }
}

/// RFC 9497, section 3.3.1, Finalize: Hash(I2OSP(len(input), 2) || input ||
/// I2OSP(len(unblindedElement), 2) || unblindedElement || "Finalize").
pub fn finalize(input: &[u8], unblinded: &[u8; 32]) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update((input.len() as u16).to_be_bytes());
    h.update(input);
    h.update(32u16.to_be_bytes());
    h.update(unblinded);
    h.update(b"Finalize");
    h.finalize().into()
}
