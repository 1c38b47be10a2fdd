//! Batched DLEQ proofs of RFC 9497, section 2.2 (GenerateProof, VerifyProof).
//!
//! A = G (the generator), B = the server's public key k * G, C = the blinded elements,
//! D = the evaluated elements D[i] = k * C[i]. The proof shows log_A(B) == log_C[i](D[i])
//! for every i at once, through one random linear combination (the composites).

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::VartimeMultiscalarMul;
use sha2::{Digest, Sha512};
use zeroize::Zeroize;

use crate::group::POINT_BYTES;
use crate::hash::Xmd64;

/// SerializeScalar(c) || SerializeScalar(s).
pub const PROOF_BYTES: usize = 64;
/// Composites index their elements with I2OSP(i, 2): at most 65,535 per proof.
pub const MAX_BATCH: usize = 65535;

/// The suite's hashes for one contextString (RFC 9497, section 3.1).
#[derive(Clone)]
pub struct Suite {
    seed_dst: Vec<u8>,
    to_scalar: Xmd64,
}

impl Suite {
    /// The suite for `context`, e.g. "OPRFV1-\x01-ristretto255-SHA512" for VOPRF.
    pub fn new(context: &[u8]) -> Option<Self> {
        let mut seed_dst = b"Seed-".to_vec();
        seed_dst.extend_from_slice(context);
        let mut scalar_dst = b"HashToScalar-".to_vec();
        scalar_dst.extend_from_slice(context);
        let to_scalar = Xmd64::new(&scalar_dst).ok()?;
        Some(Self { seed_dst, to_scalar })
    }

    /// The composite weights d[i] of ComputeComposites (section 2.2.1).
    fn weights(&self, b: &[u8], c: &[u8], d: &[u8]) -> Vec<Scalar> {
        let mut h1 = Sha512::new();
        h1.update((b.len() as u16).to_be_bytes());
        h1.update(b);
        h1.update((self.seed_dst.len() as u16).to_be_bytes());
        h1.update(&self.seed_dst);
        let seed = h1.finalize();
        let mut transcript = Vec::with_capacity(2 + 64 + 2 + 2 * (2 + POINT_BYTES) + 9);
        c.chunks_exact(POINT_BYTES)
            .zip(d.chunks_exact(POINT_BYTES))
            .enumerate()
            .map(|(i, (ci, di))| {
                transcript.clear();
                transcript.extend_from_slice(&64u16.to_be_bytes());
                transcript.extend_from_slice(&seed);
                transcript.extend_from_slice(&(i as u16).to_be_bytes());
                transcript.extend_from_slice(&(POINT_BYTES as u16).to_be_bytes());
                transcript.extend_from_slice(ci);
                transcript.extend_from_slice(&(POINT_BYTES as u16).to_be_bytes());
                transcript.extend_from_slice(di);
                transcript.extend_from_slice(b"Composite");
                self.to_scalar.hash_to_scalar(&transcript)
            })
            .collect()
    }

    /// The challenge c over B, M, Z, t2, t3 (section 2.2.1).
    fn challenge(&self, b: &[u8], points: [&RistrettoPoint; 4]) -> Scalar {
        let mut transcript = Vec::with_capacity(5 * (2 + POINT_BYTES) + 9);
        transcript.extend_from_slice(&(POINT_BYTES as u16).to_be_bytes());
        transcript.extend_from_slice(b);
        for point in points {
            transcript.extend_from_slice(&(POINT_BYTES as u16).to_be_bytes());
            transcript.extend_from_slice(point.compress().as_bytes());
        }
        transcript.extend_from_slice(b"Challenge");
        self.to_scalar.hash_to_scalar(&transcript)
    }

    /// GenerateProof(k, G, B, C, D) with the given randomness r (section 2.2.1).
    ///
    /// `c_points` are C decoded; `c` and `d` their packed encodings. The composite M is
    /// computed as the prover may (ComputeCompositesFast): Z = k * M.
    pub fn prove(
        &self,
        k: &Scalar,
        b: &[u8],
        c_points: &[RistrettoPoint],
        c: &[u8],
        d: &[u8],
        r: &Scalar,
    ) -> [u8; PROOF_BYTES] {
        let weights = self.weights(b, c, d);
        // The weights and C are public, so variable time is fine here.
        let m = RistrettoPoint::vartime_multiscalar_mul(&weights, c_points);
        let z = k * m;
        let t2 = RistrettoPoint::mul_base(r);
        let t3 = r * m;
        let challenge = self.challenge(b, [&m, &z, &t2, &t3]);
        let mut s = r - challenge * k;
        let mut proof = [0u8; PROOF_BYTES];
        proof[..32].copy_from_slice(challenge.as_bytes());
        proof[32..].copy_from_slice(s.as_bytes());
        s.zeroize();
        proof
    }

    /// VerifyProof(G, B, C, D, proof) (section 2.2.2); everything here is public.
    pub fn verify(
        &self,
        b_point: &RistrettoPoint,
        b: &[u8],
        c_points: &[RistrettoPoint],
        d_points: &[RistrettoPoint],
        c: &[u8],
        d: &[u8],
        proof: &[u8],
    ) -> bool {
        if proof.len() != PROOF_BYTES || c_points.len() != d_points.len() {
            return false;
        }
        let parse = |bytes: &[u8]| -> Option<Scalar> {
            let array: [u8; 32] = bytes.try_into().ok()?;
            Option::from(Scalar::from_canonical_bytes(array))
        };
        let (Some(challenge), Some(s)) = (parse(&proof[..32]), parse(&proof[32..])) else {
            return false;
        };
        let weights = self.weights(b, c, d);
        let m = RistrettoPoint::vartime_multiscalar_mul(&weights, c_points);
        let z = RistrettoPoint::vartime_multiscalar_mul(&weights, d_points);
        let t2 = RistrettoPoint::vartime_double_scalar_mul_basepoint(&challenge, b_point, &s);
        let t3 = RistrettoPoint::vartime_multiscalar_mul([s, challenge], [m, z]);
        let expected = self.challenge(b, [&m, &z, &t2, &t3]);
        expected == challenge
    }
}

