//! Lists of SPIs of one size, as the IKEv1 and IKEv2 Delete payloads carry
//! them (RFC 2408 §3.15, RFC 7296 §3.11).

use super::{Error, Result};

/// Splits `data` into `declared` SPIs of `size` bytes; the SPIs must fill
/// it exactly. An SPI size of zero with SPIs announced is refused: it
/// would make a few bytes stand for thousands of empty SPIs.
pub(crate) fn split_spis(
    payload: u8,
    size: u8,
    declared: u16,
    data: &[u8],
    max: usize,
) -> Result<Vec<Vec<u8>>> {
    let size = usize::from(size);
    if size > max || (size == 0 && declared > 0) {
        return Err(Error::BadSpiSize { payload, size });
    }
    if size == 0 {
        return match data.len() {
            0 => Ok(Vec::new()),
            len => Err(Error::TrailingData { len }),
        };
    }
    let chunks = data.chunks_exact(size);
    if !chunks.remainder().is_empty() {
        return Err(Error::Malformed {
            payload,
            reason: "SPIs do not fill the payload",
        });
    }
    if chunks.len() != usize::from(declared) {
        return Err(Error::CountMismatch {
            payload,
            what: "SPI",
            declared: usize::from(declared),
            found: chunks.len(),
        });
    }
    Ok(chunks.map(<[u8]>::to_vec).collect())
}

/// Checks SPIs before encoding them: each `size` bytes, `size` within
/// bounds and not zero when there are SPIs.
pub(crate) fn check_spis(payload: u8, size: u8, spis: &[Vec<u8>], max: usize) -> Result<()> {
    let size = usize::from(size);
    let bad = size > max || (size == 0 && !spis.is_empty()) || spis.iter().any(|s| s.len() != size);
    if bad {
        return Err(Error::BadSpiSize { payload, size });
    }
    Ok(())
}
