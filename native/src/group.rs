//! Packed ristretto255 batches: strict decoding, scalar multiplication, batch encoding.

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use zeroize::Zeroize;

/// A canonical ristretto255 encoding (RFC 9496, section 4.3.2).
pub const POINT_BYTES: usize = 32;

/// One opaque refusal for any defect in a packed batch of points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidPoint;

/// Decode one point as RFC 9497's DeserializeElement does (section 2.1).
///
/// dalek decodes strictly by RFC 9496, section 4.3.1: an encoding >= p, any with bit
/// 255 set, and a negative s are refused. The identity (all zeros, its only encoding)
/// decodes, but RFC 9497 refuses it, and so do we.
pub fn decode(bytes: &[u8]) -> Result<RistrettoPoint, InvalidPoint> {
    let compressed = CompressedRistretto::from_slice(bytes).map_err(|_| InvalidPoint)?;
    if compressed.as_bytes() == &[0u8; POINT_BYTES] {
        return Err(InvalidPoint);
    }
    compressed.decompress().ok_or(InvalidPoint)
}

/// Decode every point of a packed batch, in order.
pub fn decode_all(packed: &[u8]) -> Result<Vec<RistrettoPoint>, InvalidPoint> {
    if packed.len() % POINT_BYTES != 0 {
        return Err(InvalidPoint);
    }
    packed.chunks_exact(POINT_BYTES).map(decode).collect()
}

/// The encodings of `scalar * P` for every P, packed, with one field inversion per batch.
///
/// Ristretto encoding needs an inverse square root per point, but the encodings of
/// doubled points batch (dalek's `double_and_compress_batch`), so each point is
/// multiplied by scalar / 2 and doubled while encoding: 2 * (scalar / 2) * P = scalar * P.
pub fn mult_and_encode(scalar: &Scalar, points: &[RistrettoPoint], out: &mut Vec<u8>) {
    let mut half = scalar * Scalar::from(2u8).invert();
    let products: Vec<RistrettoPoint> = points.iter().map(|p| half * p).collect();
    // scalar / 2 is as secret as the scalar itself.
    half.zeroize();
    for encoded in RistrettoPoint::double_and_compress_batch(&products) {
        out.extend_from_slice(encoded.as_bytes());
    }
}
