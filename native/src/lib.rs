//! Kruispunt's ristretto255 core as the Python extension module `kruispunt.native`.
//!
//! Everything works on packed batches (32-byte points end to end), releases the GIL
//! and runs in parallel over chunks on one shared rayon pool (`set_threads`). Secret
//! scalars live in `Secret` objects, in Rust memory that is zeroed on `wipe()` and on
//! drop; they are copied into a zeroizing local for the duration of a call only.

mod dleq;
mod group;
mod hash;

use std::ffi::c_int;
use std::sync::{Arc, OnceLock, RwLock};

use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use pyo3::create_exception;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use rayon::prelude::*;
use zeroize::{Zeroize, Zeroizing};

use crate::dleq::{Suite, MAX_BATCH, PROOF_BYTES};
use crate::group::{decode, decode_all, mult_and_encode, InvalidPoint as BadPoint, POINT_BYTES};
use crate::hash::Xmd64;

create_exception!(
    native,
    InvalidPoint,
    PyValueError,
    "A packed batch holds a defect: a length that is not whole points, a non-canonical \
     encoding or the identity. It names neither the point nor its position."
);

/// Points per parallel task: large enough to amortise the batch inversion, small enough
/// to keep every thread busy on a chunk of a few thousand points.
const DEFAULT_CHUNK: usize = 512;
/// RFC 9497, section 3.3.1: inputs are length-prefixed with two bytes.
const MAX_INPUT: usize = 0xFFFF;

// --- the shared thread pool ---------------------------------------------------------

struct Parallelism {
    /// Built on first use, so that sizing the pool before any work starts no extra threads.
    pool: Option<Arc<rayon::ThreadPool>>,
    threads: usize,
    chunk: usize,
}

fn parallelism() -> &'static RwLock<Parallelism> {
    static CELL: OnceLock<RwLock<Parallelism>> = OnceLock::new();
    CELL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        RwLock::new(Parallelism { pool: None, threads, chunk: DEFAULT_CHUNK })
    })
}

fn build_pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("kruispunt-group-{i}"))
        .build()
        .expect("a rayon thread pool")
}

fn current() -> (Arc<rayon::ThreadPool>, usize) {
    {
        let guard = parallelism().read().unwrap_or_else(|e| e.into_inner());
        if let Some(pool) = &guard.pool {
            return (pool.clone(), guard.chunk);
        }
    }
    let mut guard = parallelism().write().unwrap_or_else(|e| e.into_inner());
    let threads = guard.threads;
    let pool = guard.pool.get_or_insert_with(|| Arc::new(build_pool(threads))).clone();
    (pool, guard.chunk)
}

/// Run `work(chunk)` on the shared pool with the GIL released.
fn run<T: Send>(py: Python<'_>, work: impl FnOnce(usize) -> T + Send) -> T {
    let (pool, chunk) = current();
    py.detach(move || pool.install(move || work(chunk)))
}

/// Size the shared pool: `threads` worker threads, `chunk_points` points per task.
///
/// Work already running finishes on the pool it started on.
#[pyfunction]
#[pyo3(signature = (threads, chunk_points = DEFAULT_CHUNK))]
fn set_threads(threads: usize, chunk_points: usize) -> PyResult<()> {
    if threads == 0 || chunk_points == 0 {
        return Err(PyValueError::new_err("threads and chunk_points must be positive"));
    }
    let mut guard = parallelism().write().unwrap_or_else(|e| e.into_inner());
    if guard.threads != threads {
        guard.threads = threads;
        guard.pool = None;
    }
    guard.chunk = chunk_points;
    Ok(())
}

/// How many threads the shared pool runs.
#[pyfunction]
fn threads() -> usize {
    parallelism().read().unwrap_or_else(|e| e.into_inner()).threads
}

/// The arithmetic backend curve25519-dalek runs on this CPU: "avx512ifma", "avx2" or "serial".
///
/// dalek picks it at run time from the backends it was built with (cpufeatures); this
/// asks the CPU the same questions for the same build configuration.
#[pyfunction]
fn backend() -> &'static str {
    #[cfg(all(target_arch = "x86_64", curve25519_dalek_backend = "avx512"))]
    if std::is_x86_feature_detected!("avx512ifma") && std::is_x86_feature_detected!("avx512vl") {
        return "avx512ifma";
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_pointer_width = "64",
        not(any(curve25519_dalek_backend = "serial", curve25519_dalek_backend = "fiat"))
    ))]
    if std::is_x86_feature_detected!("avx2") {
        return "avx2";
    }
    "serial"
}

// --- secrets ------------------------------------------------------------------------

/// A non-zero canonical scalar held in Rust memory, zeroed by `wipe()` and on drop.
///
/// It exports a read-only buffer of its 32 bytes, so `memoryview(secret)` reads the
/// secret in place (and reads zeros once wiped) without a copy. It refuses pickling
/// and copying: a key never leaves the process by accident.
#[pyclass(module = "kruispunt.native")]
struct Secret {
    bytes: Box<[u8; 32]>,
    wiped: bool,
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl Secret {
    fn from_scalar(mut scalar: Scalar) -> Self {
        let secret = Self { bytes: Box::new(scalar.to_bytes()), wiped: false };
        scalar.zeroize();
        secret
    }

    fn scalar(&self) -> PyResult<Zeroizing<Scalar>> {
        if self.wiped {
            return Err(PyValueError::new_err("secret has been wiped"));
        }
        Option::<Scalar>::from(Scalar::from_canonical_bytes(*self.bytes))
            .map(Zeroizing::new)
            .ok_or_else(|| PyValueError::new_err("scalar must be canonical and non-zero"))
    }
}

fn random_scalar() -> PyResult<Scalar> {
    let mut wide = Zeroizing::new([0u8; 64]);
    loop {
        getrandom::fill(wide.as_mut())
            .map_err(|e| PyValueError::new_err(format!("no system randomness: {e}")))?;
        let scalar = Scalar::from_bytes_mod_order_wide(&wide);
        if scalar != Scalar::ZERO {
            return Ok(scalar);
        }
    }
}

#[pymethods]
impl Secret {
    /// Hold a copy of `data`: 32 bytes, little-endian, below the group order, non-zero.
    #[new]
    fn new(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let buffer = pyo3::buffer::PyBuffer::<u8>::get(data)
            .map_err(|_| PyTypeError::new_err("scalar must be bytes, bytearray or memoryview"))?;
        if buffer.len_bytes() != 32 {
            return Err(PyValueError::new_err("scalar must be 32 bytes"));
        }
        let mut bytes = Box::new([0u8; 32]);
        buffer.copy_to_slice(py, bytes.as_mut())?;
        let secret = Self { bytes, wiped: false };
        if *secret.bytes == [0u8; 32] {
            return Err(PyValueError::new_err("scalar must be canonical and non-zero"));
        }
        secret.scalar()?;
        Ok(secret)
    }

    /// A uniformly random non-zero scalar from the operating system's CSPRNG.
    #[staticmethod]
    fn random() -> PyResult<Self> {
        Ok(Self::from_scalar(random_scalar()?))
    }

    /// 1 / self modulo the group order.
    fn invert(&self) -> PyResult<Self> {
        Ok(Self::from_scalar(self.scalar()?.invert()))
    }

    /// self * other modulo the group order.
    fn multiply(&self, other: &Secret) -> PyResult<Self> {
        Ok(Self::from_scalar(&*self.scalar()? * &*other.scalar()?))
    }

    /// The encoding of self * G, the public key RFC 9497 calls pkS.
    fn public_key<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let point = RistrettoPoint::mul_base(&*self.scalar()?);
        Ok(PyBytes::new(py, point.compress().as_bytes()))
    }

    /// Overwrite the scalar with zeros; every later use raises ValueError.
    fn wipe(&mut self) {
        self.bytes.zeroize();
        self.wiped = true;
    }

    /// Whether `wipe()` has run.
    #[getter]
    fn wiped(&self) -> bool {
        self.wiped
    }

    fn __repr__(&self) -> &'static str {
        if self.wiped { "Secret(wiped)" } else { "Secret(<secret>)" }
    }

    fn __reduce__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err("secrets are not picklable"))
    }

    fn __copy__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err("secrets are not copyable"))
    }

    fn __deepcopy__(&self, _memo: &Bound<'_, PyAny>) -> PyResult<()> {
        Err(PyTypeError::new_err("secrets are not copyable"))
    }

    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if (flags & ffi::PyBUF_WRITABLE) == ffi::PyBUF_WRITABLE {
            return Err(pyo3::exceptions::PyBufferError::new_err("secrets are read-only"));
        }
        // The bytes live in a Box that is never reallocated, and the view keeps `slf`
        // alive, so the pointer stays valid for the view's lifetime.
        let ptr = slf.borrow().bytes.as_ptr() as *mut std::ffi::c_void;
        let rc = unsafe { ffi::PyBuffer_FillInfo(view, slf.as_ptr(), ptr, 32, 1, flags) };
        if rc == -1 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }
}

// --- inputs -------------------------------------------------------------------------

/// A list of byte strings copied end to end, so the work can run without the GIL.
struct Inputs {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Inputs {
    fn from_py(inputs: &Bound<'_, PyAny>) -> PyResult<Self> {
        let mut data = Vec::new();
        let mut ends = Vec::new();
        for item in inputs.try_iter()? {
            let item = item?;
            let bytes = item
                .cast::<PyBytes>()
                .map_err(|_| PyTypeError::new_err("every input must be bytes"))?;
            let bytes = bytes.as_bytes();
            if bytes.len() > MAX_INPUT {
                return Err(PyValueError::new_err("OPRF input longer than 65535 bytes"));
            }
            data.extend_from_slice(bytes);
            ends.push(data.len());
        }
        Ok(Self { data, ends })
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }

    /// Index ranges of at most `chunk` inputs.
    fn spans(&self, chunk: usize) -> Vec<(usize, usize)> {
        (0..self.len()).step_by(chunk).map(|lo| (lo, (lo + chunk).min(self.len()))).collect()
    }
}

impl Drop for Inputs {
    fn drop(&mut self) {
        // Canonical identifiers are personal data: do not leave them in freed memory.
        self.data.zeroize();
    }
}

fn expander(dst: &[u8]) -> PyResult<Xmd64> {
    Xmd64::new(dst).map_err(|_| PyValueError::new_err("DST longer than 255 bytes"))
}

fn invalid(_: BadPoint) -> PyErr {
    InvalidPoint::new_err(())
}

fn joined(parts: Vec<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for part in parts {
        out.extend_from_slice(&part);
    }
    out
}

// --- batch operations ---------------------------------------------------------------

/// `len_in_bytes` uniform bytes: RFC 9380, section 5.3.1, with H = SHA-512.
#[pyfunction]
fn expand_message_xmd<'py>(
    py: Python<'py>,
    msg: &[u8],
    dst: &[u8],
    len_in_bytes: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let out = hash::expand_message_xmd(msg, dst, len_in_bytes)
        .map_err(|_| PyValueError::new_err("expand_message_xmd parameters out of range"))?;
    Ok(PyBytes::new(py, &out))
}

/// HashToGroup(x) under `dst` for every input, packed (RFC 9497, section 4.1).
#[pyfunction]
fn hash_to_group<'py>(
    py: Python<'py>,
    inputs: &Bound<'py, PyAny>,
    dst: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let inputs = Inputs::from_py(inputs)?;
    let xmd = expander(dst)?;
    let out = run(py, |chunk| {
        let parts: Vec<Vec<u8>> = inputs
            .spans(chunk)
            .into_par_iter()
            .map(|(lo, hi)| {
                let mut out = Vec::with_capacity((hi - lo) * POINT_BYTES);
                for i in lo..hi {
                    out.extend_from_slice(xmd.hash_to_group(inputs.get(i)).compress().as_bytes());
                }
                out
            })
            .collect();
        joined(parts)
    });
    Ok(PyBytes::new(py, &out))
}

/// scalar * HashToGroup(x) under `dst` for every input, packed (RFC 9497 Blind).
#[pyfunction]
fn hash_and_mult<'py>(
    py: Python<'py>,
    inputs: &Bound<'py, PyAny>,
    dst: &[u8],
    scalar: &Secret,
) -> PyResult<Bound<'py, PyBytes>> {
    let inputs = Inputs::from_py(inputs)?;
    let xmd = expander(dst)?;
    let k = scalar.scalar()?;
    let out = run(py, |chunk| {
        let parts: Vec<Vec<u8>> = inputs
            .spans(chunk)
            .into_par_iter()
            .map(|(lo, hi)| {
                let points: Vec<RistrettoPoint> =
                    (lo..hi).map(|i| xmd.hash_to_group(inputs.get(i))).collect();
                let mut out = Vec::with_capacity(points.len() * POINT_BYTES);
                mult_and_encode(&k, &points, &mut out);
                out
            })
            .collect();
        joined(parts)
    });
    Ok(PyBytes::new(py, &out))
}

fn mult_packed(py: Python<'_>, k: &Scalar, packed: &[u8]) -> Result<Vec<u8>, BadPoint> {
    if packed.len() % POINT_BYTES != 0 {
        return Err(BadPoint);
    }
    run(py, |chunk| {
        let parts: Result<Vec<Vec<u8>>, BadPoint> = packed
            .par_chunks(chunk * POINT_BYTES)
            .map(|span| {
                let points = decode_all(span)?;
                let mut out = Vec::with_capacity(span.len());
                mult_and_encode(k, &points, &mut out);
                Ok(out)
            })
            .collect();
        parts.map(joined)
    })
}

/// scalar * P for every point P of `packed`, in order; InvalidPoint for any defect.
///
/// A product is never the identity: the scalar is non-zero and the group has prime order.
#[pyfunction]
fn scalar_mult<'py>(
    py: Python<'py>,
    scalar: &Secret,
    packed: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let k = scalar.scalar()?;
    let out = mult_packed(py, &k, packed).map_err(invalid)?;
    Ok(PyBytes::new(py, &out))
}

/// The number of points in `packed` if every one decodes strictly and is not the identity.
#[pyfunction]
fn validate_points(py: Python<'_>, packed: &[u8]) -> PyResult<usize> {
    if packed.len() % POINT_BYTES != 0 {
        return Err(InvalidPoint::new_err(()));
    }
    run(py, |chunk| {
        packed
            .par_chunks(chunk * POINT_BYTES)
            .try_for_each(|span| span.chunks_exact(POINT_BYTES).try_for_each(|p| decode(p).map(drop)))
    })
    .map_err(invalid)?;
    Ok(packed.len() / POINT_BYTES)
}

fn finalize_into(inputs: &Inputs, lo: usize, encoded: &[u8], out: &mut Vec<u8>) {
    for (j, point) in encoded.chunks_exact(POINT_BYTES).enumerate() {
        let point: &[u8; 32] = point.try_into().expect("32-byte chunks");
        out.extend_from_slice(&hash::finalize(inputs.get(lo + j), point));
    }
}

/// RFC 9497 Finalize(x, T), 64 bytes, for every input x and its unblinded point T, packed.
#[pyfunction]
fn finalize<'py>(
    py: Python<'py>,
    inputs: &Bound<'py, PyAny>,
    packed_unblinded: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let inputs = Inputs::from_py(inputs)?;
    if packed_unblinded.len() != inputs.len() * POINT_BYTES {
        return Err(PyValueError::new_err("point count does not match the number of inputs"));
    }
    let out = run(py, |chunk| {
        let parts: Vec<Vec<u8>> = inputs
            .spans(chunk)
            .into_par_iter()
            .map(|(lo, hi)| {
                let mut out = Vec::with_capacity((hi - lo) * 64);
                finalize_into(&inputs, lo, &packed_unblinded[lo * POINT_BYTES..hi * POINT_BYTES], &mut out);
                out
            })
            .collect();
        joined(parts)
    });
    Ok(PyBytes::new(py, &out))
}

/// Finalize(x, scalar * B), 64 bytes, for every input x and its point B, packed.
#[pyfunction]
fn mult_and_finalize<'py>(
    py: Python<'py>,
    inputs: &Bound<'py, PyAny>,
    scalar: &Secret,
    packed: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let inputs = Inputs::from_py(inputs)?;
    if packed.len() != inputs.len() * POINT_BYTES {
        return Err(PyValueError::new_err("point count does not match the number of inputs"));
    }
    let k = scalar.scalar()?;
    let out = run(py, |chunk| {
        let parts: Result<Vec<Vec<u8>>, BadPoint> = inputs
            .spans(chunk)
            .into_par_iter()
            .map(|(lo, hi)| {
                let points = decode_all(&packed[lo * POINT_BYTES..hi * POINT_BYTES])?;
                let mut encoded = Vec::with_capacity(points.len() * POINT_BYTES);
                mult_and_encode(&k, &points, &mut encoded);
                let mut out = Vec::with_capacity(points.len() * 64);
                finalize_into(&inputs, lo, &encoded, &mut out);
                encoded.zeroize();
                Ok(out)
            })
            .collect();
        parts.map(joined)
    })
    .map_err(invalid)?;
    Ok(PyBytes::new(py, &out))
}

// --- DLEQ proofs (RFC 9497, section 2.2) --------------------------------------------

fn suite(context: &[u8]) -> PyResult<Suite> {
    Suite::new(context).ok_or_else(|| PyValueError::new_err("context string too long"))
}

fn check_pair(blinded: &[u8], evaluated: &[u8]) -> PyResult<()> {
    if blinded.len() != evaluated.len() || blinded.len() % POINT_BYTES != 0 || blinded.is_empty() {
        return Err(InvalidPoint::new_err(()));
    }
    Ok(())
}

fn check_chunk(chunk_points: usize) -> PyResult<()> {
    if chunk_points == 0 || chunk_points > MAX_BATCH {
        return Err(PyValueError::new_err("chunk_points must be 1..65535"));
    }
    Ok(())
}

/// One batched DLEQ proof (c || s, 64 bytes) that `evaluated` = k * `blinded` and
/// `public_key` = k * G (GenerateProof, section 2.2.1), for `context`'s suite.
///
/// `r` is the proof's randomness (RFC 9497's test vectors fix it); None draws it fresh.
#[pyfunction]
#[pyo3(signature = (key, blinded, evaluated, context, r = None))]
fn dleq_prove<'py>(
    py: Python<'py>,
    key: &Secret,
    blinded: &[u8],
    evaluated: &[u8],
    context: &[u8],
    r: Option<&Secret>,
) -> PyResult<Bound<'py, PyBytes>> {
    check_pair(blinded, evaluated)?;
    if blinded.len() / POINT_BYTES > MAX_BATCH {
        return Err(PyValueError::new_err("at most 65535 elements per proof"));
    }
    let suite = suite(context)?;
    let k = key.scalar()?;
    let r = match r {
        Some(r) => r.scalar()?,
        None => Zeroizing::new(random_scalar()?),
    };
    let public = RistrettoPoint::mul_base(&k).compress();
    let proof = py
        .detach(|| -> Result<[u8; PROOF_BYTES], BadPoint> {
            let c_points = decode_all(blinded)?;
            Ok(suite.prove(&k, public.as_bytes(), &c_points, blinded, evaluated, &r))
        })
        .map_err(invalid)?;
    Ok(PyBytes::new(py, &proof))
}

/// Whether `proof` shows `evaluated` = k * `blinded` for the k of `public_key` (section 2.2.2).
///
/// Any undecodable element or malformed proof is simply False.
#[pyfunction]
fn dleq_verify(
    py: Python<'_>,
    public_key: &[u8],
    blinded: &[u8],
    evaluated: &[u8],
    proof: &[u8],
    context: &[u8],
) -> PyResult<bool> {
    if check_pair(blinded, evaluated).is_err() || blinded.len() / POINT_BYTES > MAX_BATCH {
        return Ok(false);
    }
    let suite = suite(context)?;
    Ok(py.detach(|| {
        let (Ok(b), Ok(c), Ok(d)) = (decode(public_key), decode_all(blinded), decode_all(evaluated))
        else {
            return false;
        };
        suite.verify(&b, public_key, &c, &d, blinded, evaluated, proof)
    }))
}

/// Evaluate `packed` with `key` and prove every chunk of `chunk_points` points.
///
/// Returns (k * P for every P, packed; one 64-byte proof per chunk, in order), in
/// parallel on the shared pool: a hop's evaluation with its proofs in one pass.
#[pyfunction]
fn evaluate_and_prove<'py>(
    py: Python<'py>,
    key: &Secret,
    packed: &[u8],
    context: &[u8],
    chunk_points: usize,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyList>)> {
    check_chunk(chunk_points)?;
    if packed.len() % POINT_BYTES != 0 {
        return Err(InvalidPoint::new_err(()));
    }
    let suite = suite(context)?;
    let k = key.scalar()?;
    let public = RistrettoPoint::mul_base(&k).compress();
    let spans: Vec<&[u8]> = packed.chunks(chunk_points * POINT_BYTES).collect();
    let mut randomness = Vec::with_capacity(spans.len());
    for _ in &spans {
        randomness.push(Zeroizing::new(random_scalar()?));
    }
    let parts = run(py, |_| {
        spans
            .par_iter()
            .zip(randomness.par_iter())
            .map(|(span, r)| -> Result<(Vec<u8>, [u8; PROOF_BYTES]), BadPoint> {
                let points = decode_all(span)?;
                let mut out = Vec::with_capacity(span.len());
                mult_and_encode(&k, &points, &mut out);
                let proof = suite.prove(&k, public.as_bytes(), &points, span, &out, r);
                Ok((out, proof))
            })
            .collect::<Result<Vec<_>, BadPoint>>()
    })
    .map_err(invalid)?;
    let mut out = Vec::with_capacity(packed.len());
    let proofs = PyList::empty(py);
    for (points, proof) in parts {
        out.extend_from_slice(&points);
        proofs.append(PyBytes::new(py, &proof))?;
    }
    Ok((PyBytes::new(py, &out), proofs))
}

/// Whether every chunk of `chunk_points` points of `evaluated` carries a valid proof
/// (`proofs`, one per chunk, in order) against the same chunk of `blinded`.
#[pyfunction]
fn dleq_verify_chunks(
    py: Python<'_>,
    public_key: &[u8],
    blinded: &[u8],
    evaluated: &[u8],
    proofs: Vec<Vec<u8>>,
    context: &[u8],
    chunk_points: usize,
) -> PyResult<bool> {
    check_chunk(chunk_points)?;
    if blinded.len() != evaluated.len() || blinded.len() % POINT_BYTES != 0 {
        return Ok(false);
    }
    let spans = (blinded.len() / POINT_BYTES).div_ceil(chunk_points);
    if proofs.len() != spans {
        return Ok(false);
    }
    let suite = suite(context)?;
    let Ok(b) = decode(public_key) else {
        return Ok(false);
    };
    let step = chunk_points * POINT_BYTES;
    Ok(run(py, |_| {
        blinded
            .par_chunks(step)
            .zip(evaluated.par_chunks(step))
            .zip(proofs.par_iter())
            .all(|((c, d), proof)| match (decode_all(c), decode_all(d)) {
                (Ok(cp), Ok(dp)) => suite.verify(&b, public_key, &cp, &dp, c, d, proof),
                _ => false,
            })
    }))
}

// --- Ed25519 public keys --------------------------------------------------------------

/// Whether `encoding` is a canonical Ed25519 point in the prime-order subgroup, not of
/// small order (the checks of libsodium's crypto_core_ed25519_is_valid_point).
#[pyfunction]
fn ed25519_is_valid_point(encoding: &[u8]) -> bool {
    let Ok(compressed) = CompressedEdwardsY::from_slice(encoding) else {
        return false;
    };
    match compressed.decompress() {
        Some(point) => {
            point.compress().as_bytes() == encoding
                && !point.is_small_order()
                && point.is_torsion_free()
        }
        None => false,
    }
}

#[pymodule]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("InvalidPoint", m.py().get_type::<InvalidPoint>())?;
    m.add("POINT_BYTES", POINT_BYTES)?;
    m.add("PROOF_BYTES", PROOF_BYTES)?;
    m.add("MAX_PROOF_BATCH", MAX_BATCH)?;
    m.add_class::<Secret>()?;
    m.add_function(wrap_pyfunction!(set_threads, m)?)?;
    m.add_function(wrap_pyfunction!(threads, m)?)?;
    m.add_function(wrap_pyfunction!(backend, m)?)?;
    m.add_function(wrap_pyfunction!(expand_message_xmd, m)?)?;
    m.add_function(wrap_pyfunction!(hash_to_group, m)?)?;
    m.add_function(wrap_pyfunction!(hash_and_mult, m)?)?;
    m.add_function(wrap_pyfunction!(scalar_mult, m)?)?;
    m.add_function(wrap_pyfunction!(validate_points, m)?)?;
    m.add_function(wrap_pyfunction!(finalize, m)?)?;
    m.add_function(wrap_pyfunction!(mult_and_finalize, m)?)?;
    m.add_function(wrap_pyfunction!(dleq_prove, m)?)?;
    m.add_function(wrap_pyfunction!(dleq_verify, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate_and_prove, m)?)?;
    m.add_function(wrap_pyfunction!(dleq_verify_chunks, m)?)?;
    m.add_function(wrap_pyfunction!(ed25519_is_valid_point, m)?)?;
    Ok(())
}
