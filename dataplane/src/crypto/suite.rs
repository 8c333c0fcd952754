//! Builds the keyed suite for an SA from its algorithms and keys.
use super::{AuthAlg, CryptoError, EncAlg, EspSuite};

/// Creates the suite for one SA. `enc_key` includes the GCM salt.
pub fn new_suite(
    enc: EncAlg,
    enc_key: &[u8],
    auth: AuthAlg,
    auth_key: &[u8],
    esn: bool,
) -> Result<Box<dyn EspSuite>, CryptoError> {
    let _ = (enc, enc_key, auth, auth_key, esn);
    Err(CryptoError::InvalidSuite("not implemented yet"))
}
