//! Packet I/O backends. `xsk` is AF_XDP on the kernel ABI; a DPDK backend
//! could slot in beside it. The worker's stages (`pipeline`) never see
//! which one delivered a frame. `xdp` loads the XDP program that decides
//! which frames reach the AF_XDP sockets at all.

pub mod xdp;
pub mod xsk;
