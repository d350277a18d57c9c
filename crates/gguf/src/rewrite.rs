//! A GGUF file written again with some tensors replaced: every other tensor's bytes copied
//! as they are (in their own type), the metadata carried over, the tensor order and dims
//! kept — how an edited model goes back to the local-model tools it came from.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::file::GgufFile;
use crate::types::GgmlType;
use crate::write::Writer;

/// A tensor's new contents in [`rewrite`]: its type (possibly another than before) and data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replacement {
    /// The type the data are encoded in.
    pub ty: GgmlType,
    /// The encoded data, in storage order.
    pub data: Vec<u8>,
}

/// The bytes of a new GGUF file: `bytes` (a whole GGUF file) with the tensors named in
/// `replace` replaced, every other tensor copied byte for byte, the metadata (in key order)
/// and the alignment carried over.
///
/// # Errors
/// A file that does not parse; a replacement for a tensor the file lacks, or whose data are
/// not the bytes of the tensor's element count in its type.
pub fn rewrite(bytes: &[u8], replace: &BTreeMap<String, Replacement>) -> Result<Vec<u8>> {
    let file = GgufFile::from_bytes(bytes)?;
    if let Some(name) = replace.keys().find(|n| file.tensor(n).is_none()) {
        return Err(Error::TensorNotFound { name: name.clone() });
    }
    let mut w = Writer {
        version: file.version,
        alignment: file.alignment,
        ..Writer::default()
    };
    for (k, v) in &file.metadata {
        w = w.kv(k, v.clone());
    }
    for info in &file.tensors {
        let (ty, data) = match replace.get(&info.name) {
            Some(r) => {
                let need = r.ty.bytes_for(info.n_elements());
                if need != Some(r.data.len() as u64) {
                    return Err(Error::InTensor {
                        name: info.name.clone(),
                        error: Box::new(Error::Invalid {
                            msg: format!(
                                "a replacement of {} bytes for {} elements of {} (needs {need:?})",
                                r.data.len(),
                                info.n_elements(),
                                r.ty
                            ),
                        }),
                    });
                }
                (r.ty, r.data.clone())
            }
            None => (info.ggml_type, file.tensor_data(bytes, info)?.to_vec()),
        };
        w = w.tensor(&info.name, &info.dims, ty, data);
    }
    Ok(w.to_bytes())
}
