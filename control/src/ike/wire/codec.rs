//! Bounded big-endian reading and length-patched writing, the two
//! primitives every payload codec is written with. The reader returns
//! `None` instead of indexing past the end, so decoders turn a short
//! buffer into their own typed error and can never panic.

use super::{Error, Result};

/// A cursor over a byte slice that never reads past its end.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.data.len()
    }

    /// The next `n` bytes, or `None` (consuming nothing) if fewer are left.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.data.len() {
            return None;
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Some(head)
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.data)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Some(out)
    }
}

/// Writes the length of everything from `start` to the end of `out` as a
/// big-endian `u16` at `at` (a placeholder written earlier).
pub(crate) fn patch_len16(
    out: &mut [u8],
    at: usize,
    start: usize,
    what: &'static str,
) -> Result<()> {
    let len = u16::try_from(out.len() - start).map_err(|_| Error::TooLong { what })?;
    out[at..at + 2].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// A count that must fit one byte on the wire.
pub(crate) fn count_u8(n: usize, what: &'static str) -> Result<u8> {
    u8::try_from(n).map_err(|_| Error::TooLong { what })
}

/// A count or length that must fit two bytes on the wire.
pub(crate) fn count_u16(n: usize, what: &'static str) -> Result<u16> {
    u16::try_from(n).map_err(|_| Error::TooLong { what })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_refuses_to_read_past_the_end_and_consumes_nothing() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u32(), None);
        assert_eq!(r.remaining(), 3);
        assert_eq!(r.u16(), Some(0x0102));
        assert_eq!(r.take(2), None);
        assert_eq!(r.u8(), Some(3));
        assert_eq!(r.u8(), None);
        assert_eq!(r.rest(), &[] as &[u8]);
    }

    #[test]
    fn length_patch_refuses_what_does_not_fit_sixteen_bits() {
        let mut out = vec![0u8; 70_000];
        assert_eq!(
            patch_len16(&mut out, 0, 0, "payload"),
            Err(Error::TooLong { what: "payload" })
        );
        let mut out = vec![0u8; 6];
        patch_len16(&mut out, 2, 0, "payload").unwrap();
        assert_eq!(out, [0, 0, 0, 6, 0, 0]);
    }
}
