//! Reading tensor data from a GGUF file on disk.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::dequant::dequantize;
use crate::error::{Error, Result};
use crate::file::{GgufFile, TensorInfo};

/// An open GGUF file: the parsed header plus a handle for reading tensor data.
///
/// Every error it returns names the file's path.
#[derive(Debug)]
pub struct GgufReader {
    /// The parsed header, metadata and tensor directory.
    pub file: GgufFile,
    handle: File,
    path: PathBuf,
    len: u64,
}

impl GgufReader {
    /// Opens `path` and parses its header, metadata and tensor directory.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let with_path = |e: Error| e.with_path(&path);
        let mut handle = File::open(&path).map_err(|e| with_path(Error::io("opening file", e)))?;
        let len = handle
            .metadata()
            .map_err(|e| with_path(Error::io("reading file metadata", e)))?
            .len();
        let file = GgufFile::read(&mut handle).map_err(with_path)?;
        Ok(GgufReader {
            file,
            handle,
            path,
            len,
        })
    }

    /// The path this reader was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length in bytes when it was opened.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// The tensor called `name`, or an error naming it and the path.
    pub fn tensor_info(&self, name: &str) -> Result<&TensorInfo> {
        self.file.tensor(name).ok_or_else(|| {
            Error::TensorNotFound {
                name: name.to_string(),
            }
            .with_path(&self.path)
        })
    }

    /// The raw (still quantised) bytes of a tensor.
    pub fn read_raw(&mut self, info: &TensorInfo) -> Result<Vec<u8>> {
        self.read_raw_inner(info)
            .map_err(|e| e.with_path(&self.path))
    }

    fn read_raw_inner(&mut self, info: &TensorInfo) -> Result<Vec<u8>> {
        let (start, end) = self.file.data_range(info)?;
        if end > self.len {
            return Err(Error::malformed(
                start,
                format!(
                    "data [{start}, {end}) lies outside the file ({} bytes)",
                    self.len
                ),
            )
            .in_tensor(&info.name));
        }
        // Bounded by the file length checked above.
        let size = usize::try_from(end - start).map_err(|_| {
            Error::malformed(start, "tensor too large for this platform").in_tensor(&info.name)
        })?;
        let ctx = || format!("reading tensor `{}` at byte offset {start}", info.name);
        self.handle
            .seek(SeekFrom::Start(start))
            .map_err(|e| Error::io(ctx(), e))?;
        let mut buf = vec![0u8; size];
        self.handle
            .read_exact(&mut buf)
            .map_err(|e| Error::io(ctx(), e))?;
        Ok(buf)
    }

    /// Tensor `info` dequantised to f32, row-major (see
    /// [`TensorInfo::shape_outer_first`]), `n_elements` long.
    pub fn read_f32_info(&mut self, info: &TensorInfo) -> Result<Vec<f32>> {
        if !info.ggml_type.can_dequantize() {
            return Err(Error::UnsupportedType {
                ty: info.ggml_type,
                tensor: Some(info.name.clone()),
            }
            .with_path(&self.path));
        }
        let raw = self.read_raw(info)?;
        let n = usize::try_from(info.n_elements()).map_err(|_| {
            Error::invalid("element count does not fit in memory")
                .in_tensor(&info.name)
                .with_path(&self.path)
        })?;
        dequantize(info.ggml_type, &raw, n)
            .map_err(|e| e.in_tensor(&info.name).with_path(&self.path))
    }

    /// Tensor `name` dequantised to f32, row-major, `n_elements` long.
    pub fn read_f32(&mut self, name: &str) -> Result<Vec<f32>> {
        let info = self.tensor_info(name)?.clone();
        self.read_f32_info(&info)
    }
}
