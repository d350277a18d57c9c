//! Content fingerprints for cache keys and provenance: FNV-1a 64, stable across platforms,
//! Rust versions and runs (unlike `DefaultHasher`), which a key stored in a file must be.

use tch::{Device, Kind};

use crate::edit::WeightId;
use crate::error::{Error, Result};
use crate::model::EditableModel;

/// FNV-1a 64-bit hash, extended over several byte strings.
///
/// ```
/// let mut h = gpt_core::fingerprint::Fnv64::default();
/// h.update(b"a");
/// assert_eq!(h.hex(), "af63dc4c8601ec8c");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash so far.
    pub fn value(&self) -> u64 {
        self.0
    }

    /// The hash as 16 hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }

    /// The hash of one byte string, as 16 hex digits.
    pub fn hex_of(bytes: &[u8]) -> String {
        let mut h = Self::default();
        h.update(bytes);
        h.hex()
    }
}

/// A fingerprint of a model, as 16 hex digits: FNV-1a 64 of its config (JSON) followed by the
/// little-endian f32 bytes of one weight matrix (so another checkpoint of the same shape
/// differs). Which matrix is the caller's choice: an edit's statistics hash the edited layer's
/// `MlpOut`, function vectors `AttnOut` of layer 0.
///
/// # Errors
/// [`Error::InvalidInput`] if the config cannot be serialised; a weight out of range;
/// libtorch errors.
pub fn model_fingerprint<M: EditableModel + ?Sized>(model: &M, weight: WeightId) -> Result<String> {
    let mut h = Fnv64::default();
    let config = serde_json::to_string(model.config())
        .map_err(|e| Error::InvalidInput(format!("model config: {e}")))?;
    h.update(config.as_bytes());
    let w = model
        .weight(weight)?
        .f_to_device(Device::Cpu)?
        .f_to_kind(Kind::Float)?
        .f_contiguous()?
        .f_flatten(0, -1)?;
    for v in Vec::<f32>::try_from(&w)? {
        h.update(&v.to_le_bytes());
    }
    Ok(h.hex())
}
