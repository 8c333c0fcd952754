//! The SA pairs the engines' in-memory tests saw installed (both IKE
//! versions record them alike: entry, proxy, inbound, outbound).

use dataplane::api::SaParams;
use dataplane::spd::{PolicyTag, TrafficSelector};

/// One `Install` output as the tests record it.
pub type Installed = (PolicyTag, TrafficSelector, SaParams, SaParams);

/// The outbound SAs of the pairs still installed: every install whose
/// inbound SPI no `(inbound, outbound)` delete names.
pub fn live_outbound<'a>(installs: &'a [Installed], deletes: &[(u32, u32)]) -> Vec<&'a SaParams> {
    installs
        .iter()
        .filter(|(_, _, i, _)| !deletes.iter().any(|d| d.0 == i.spi))
        .map(|(_, _, _, o)| o)
        .collect()
}
