//! Joining a rule list (SPD or NAT) that arrives in parts.
//!
//! A hub's SPD grows with its peers past one control message, so the
//! control process sends it as several `LoadSpd` requests
//! ([`Request::load_spd`]). Each connection stages its own parts; the
//! tables see only the whole list, swapped in at the last part, so a
//! half-loaded policy is never in force and a client that dies half-way
//! leaves nothing behind.

use crate::api::{ErrorCode, ListPart, NatRule, Reply, Request};
use crate::spd::SpdRule;

/// A part the tables do not see (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// Staged until the list's last part.
    Staged,
    /// Out of sequence, or the list is too long: the list is discarded.
    Refused { code: ErrorCode, message: String },
}

impl Held {
    /// The answer to the part's request.
    pub fn reply(self) -> Reply {
        match self {
            Held::Staged => Reply::Ack,
            Held::Refused { code, message } => Reply::Error { code, message },
        }
    }
}

/// The parts received so far of one kind of list.
#[derive(Debug)]
struct Staged<T> {
    rules: Vec<T>,
}

impl<T> Default for Staged<T> {
    fn default() -> Self {
        Staged { rules: Vec::new() }
    }
}

impl<T> Staged<T> {
    /// Takes one part: the whole list once this was the last part, or
    /// why the tables see nothing yet (a part out of sequence or a list
    /// too long discards the list).
    fn offer(&mut self, what: &str, part: ListPart, rules: Vec<T>) -> Result<Vec<T>, Held> {
        let offset = part.offset as usize;
        if offset == 0 {
            self.rules.clear();
        } else if offset != self.rules.len() {
            let staged = std::mem::take(&mut self.rules).len();
            return Err(Held::Refused {
                code: ErrorCode::Unexpected,
                message: format!(
                    "{what} part at rule {offset}, but {staged} rules were staged: \
                     a part is missing; the list is discarded, the one in force kept"
                ),
            });
        }
        let total = self.rules.len() + rules.len();
        if total > Request::MAX_LIST_RULES {
            self.rules = Vec::new();
            return Err(Held::Refused {
                code: ErrorCode::TooLarge,
                message: format!(
                    "{what} of more than {} rules refused; the one in force kept",
                    Request::MAX_LIST_RULES
                ),
            });
        }
        if !part.more && self.rules.is_empty() {
            return Ok(rules);
        }
        self.rules.extend(rules);
        if part.more {
            Err(Held::Staged)
        } else {
            Ok(std::mem::take(&mut self.rules))
        }
    }
}

/// One connection's lists in the making.
#[derive(Debug, Default)]
pub struct ListStaging {
    spd: Staged<SpdRule>,
    nat: Staged<NatRule>,
}

impl ListStaging {
    /// Passes every request through, except the parts of a list: a part
    /// before the last is held here (`Err`, answered by the connection),
    /// the last becomes one request for the whole list.
    pub fn join(&mut self, req: Request) -> Result<Request, Held> {
        match req {
            Request::LoadSpd { part, rules } => Ok(Request::LoadSpd {
                part: ListPart::WHOLE,
                rules: self.spd.offer("SPD", part, rules)?,
            }),
            Request::LoadNat { part, rules } => Ok(Request::LoadNat {
                part: ListPart::WHOLE,
                rules: self.nat.offer("NAT rule list", part, rules)?,
            }),
            other => Ok(other),
        }
    }
}
