//! A bounded little-endian byte source that tracks its offset.
//!
//! Every read first checks that the requested number of bytes is still
//! available, so callers can bound counts by [`Source::remaining`] before
//! allocating anything.

use std::io::Read;

use crate::error::{Error, Result};

/// Reads little-endian fields from `inner`, which holds `len` bytes.
pub(crate) struct Source<R> {
    inner: R,
    pos: u64,
    len: u64,
}

impl<R: Read> Source<R> {
    /// A source over `inner`, which is known to hold exactly `len` bytes.
    pub(crate) fn new(inner: R, len: u64) -> Self {
        Source { inner, pos: 0, len }
    }

    /// Current offset from the start of the GGUF data.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Bytes left before the end of the input.
    pub(crate) fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Total input length.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Fails unless `n` more bytes are available.
    pub(crate) fn need(&self, n: u64, what: &str) -> Result<()> {
        if n > self.remaining() {
            return Err(Error::UnexpectedEof {
                offset: self.pos,
                what: what.to_string(),
                needed: n,
                available: self.remaining(),
            });
        }
        Ok(())
    }

    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        let n = buf.len() as u64;
        self.need(n, what)?;
        self.inner
            .read_exact(buf)
            .map_err(|e| Error::io(format!("reading {what} at byte offset {}", self.pos), e))?;
        self.pos += n;
        Ok(())
    }

    /// Reads a fixed-size array.
    pub(crate) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    /// Reads `n` bytes; `n` is checked against the remaining input first.
    pub(crate) fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>> {
        self.need(n, what)?;
        let size = usize::try_from(n)
            .map_err(|_| Error::malformed(self.pos, format!("{what}: length {n} too large")))?;
        let mut buf = vec![0u8; size];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    /// Reads a `u8`.
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(u8::from_le_bytes(self.array(what)?))
    }
    /// Reads an `i8`.
    pub(crate) fn i8(&mut self, what: &str) -> Result<i8> {
        Ok(i8::from_le_bytes(self.array(what)?))
    }
    /// Reads a `u16`.
    pub(crate) fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    /// Reads an `i16`.
    pub(crate) fn i16(&mut self, what: &str) -> Result<i16> {
        Ok(i16::from_le_bytes(self.array(what)?))
    }
    /// Reads a `u32`.
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    /// Reads an `i32`.
    pub(crate) fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }
    /// Reads a `u64`.
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    /// Reads an `i64`.
    pub(crate) fn i64(&mut self, what: &str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }
    /// Reads an `f32`.
    pub(crate) fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }
    /// Reads an `f64`.
    pub(crate) fn f64(&mut self, what: &str) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }

    /// Reads a GGUF string: a `u64` byte length followed by UTF-8 bytes.
    pub(crate) fn string(&mut self, what: &str) -> Result<String> {
        let len_offset = self.pos;
        let n = self.u64(what)?;
        if n > self.remaining() {
            return Err(Error::malformed(
                len_offset,
                format!(
                    "{what}: string length {n} exceeds the {} bytes left in the input",
                    self.remaining()
                ),
            ));
        }
        let start = self.pos;
        let bytes = self.bytes(n, what)?;
        String::from_utf8(bytes).map_err(|e| {
            Error::malformed(start, format!("{what}: string is not valid UTF-8 ({e})"))
        })
    }
}
