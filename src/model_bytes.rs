//! Model bytes that outlive the load: int8 weights the kernel reads where they lie in them, instead of a copy, hold
//! a [`BytesSlice`], which keeps the bytes alive as long as the plan that reads them.

use std::sync::Arc;

/// The whole model file, as long as something reads from it.
#[derive(Clone)]
pub enum ModelBytes {
    /// Bytes that live as long as the program (a model compiled into the binary).
    Static(&'static [u8]),
    /// Bytes handed over to the model (a file read, or bytes passed in from JS), freed with the last plan reading them.
    Shared(Arc<Vec<u8>>),
}

impl ModelBytes {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            ModelBytes::Static(bytes) => bytes,
            ModelBytes::Shared(bytes) => bytes,
        }
    }

    /// `part` as a slice of these bytes that keeps them alive, if it lies within them.
    pub fn slice_of(&self, part: &[u8]) -> Option<BytesSlice> {
        let whole = self.as_slice();
        let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
        (start.checked_add(part.len())? <= whole.len()).then(|| BytesSlice {
            bytes: self.clone(),
            start,
            len: part.len(),
        })
    }
}

/// A part of [`ModelBytes`], read as int8 values.
#[derive(Clone)]
pub struct BytesSlice {
    bytes: ModelBytes,
    start: usize,
    len: usize,
}

impl BytesSlice {
    pub fn as_i8(&self) -> &[i8] {
        as_i8(&self.bytes.as_slice()[self.start..][..self.len])
    }
}

/// Bytes read as int8 values.
pub fn as_i8(bytes: &[u8]) -> &[i8] {
    // SAFETY: i8 and u8 have the same size and alignment, and every byte is a valid i8.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const i8, bytes.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slice_of_shared_bytes_reads_them_and_keeps_them_alive() {
        let shared = Arc::new(vec![1, 2, 255, 4]);
        let alive = Arc::downgrade(&shared);
        let bytes = ModelBytes::Shared(shared);
        let slice = bytes.slice_of(&bytes.as_slice()[1..3]).unwrap();
        drop(bytes);
        assert!(alive.upgrade().is_some(), "the slice keeps the bytes");
        assert_eq!(slice.as_i8(), &[2, -1]);
        drop(slice);
        assert!(alive.upgrade().is_none(), "nothing else does");
    }

    #[test]
    fn only_parts_within_the_bytes_are_sliced() {
        let file: &'static [u8] = b"abcdefgh";
        let bytes = ModelBytes::Static(&file[..6]);
        assert!(bytes.slice_of(&[0u8; 3]).is_none());
        assert_eq!(bytes.slice_of(&file[4..6]).unwrap().as_i8(), &[b'e' as i8, b'f' as i8]);
        assert!(bytes.slice_of(&file[4..7]).is_none());
        assert!(ModelBytes::Static(&file[2..]).slice_of(&file[1..4]).is_none(), "a part starting before them");
    }
}
