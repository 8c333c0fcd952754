//! Espada's configuration: the Cisco IOS crypto dialect, parsed into a
//! typed model and compiled into what the dataplane installs.
//!
//! The pipeline is
//!
//! ```text
//! text --lexer--> lines of tokens --parser--> Config (model, spans)
//!      --compile(resolver)--> Compiled { SaParams, SpdRule, NatRule,
//!                                        inside/outside interfaces }
//! ```
//!
//! [`Compiled`] is what `espada run` ([`crate::daemon`]) installs in the
//! dataplane and what its `show` screens describe; `espada config check`
//! ([`crate::cli`]) stops after compiling.
//!
//! - [`lexer`]: lines, tokens with columns, and redaction of key material.
//! - [`parser`]: the IOS mode machine (global, interface, crypto map, ...)
//!   dispatching each line to its command family: [`acl`], [`crypto`]
//!   (transform sets, manual crypto maps), [`interface`], [`misc`]
//!   (hostname, routes, NAT, route maps, platform housekeeping) and [`ike`]
//!   (IKE commands, parsed into the model only for now).
//! - [`model`]: what the file says, in IOS terms.
//! - [`compile`]: cross-reference checks and the dataplane's tables, with
//!   interfaces resolved through an [`InterfaceResolver`] ([`resolve`];
//!   [`kernel`] reads this machine's).
//! - [`error`]: [`ConfigError`] (line, column, token, message, caret) and
//!   [`Warning`].
//! - [`load()`]: file permissions, then parse.
//!
//! `docs/configuration.md` lists every supported command.

pub mod acl;
pub mod compile;
pub mod crypto;
pub mod cursor;
pub mod error;
pub mod ike;
pub mod interface;
pub mod kernel;
pub mod lexer;
pub mod load;
pub mod misc;
pub mod model;
pub mod parser;
pub mod resolve;

#[cfg(test)]
mod tests;

pub use compile::{compile, Compiled, CompiledEntry};
pub use error::{render_errors, ConfigError, ErrorKind, Span, Spanned, Warning};
pub use kernel::KernelInterfaces;
pub use load::{load, LoadError};
pub use model::Config;
pub use parser::parse;
pub use resolve::{ConfigAddresses, InterfaceResolver, ResolvedInterface};
