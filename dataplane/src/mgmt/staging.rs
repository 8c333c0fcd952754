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
    ///
    /// `room`: how many rules this list may reach, the dataplane's bound
    /// less what other lists in the making hold.
    fn offer(
        &mut self,
        what: &str,
        part: ListPart,
        rules: Vec<T>,
        room: usize,
    ) -> Result<Vec<T>, Held> {
        let offset = part.offset as usize;
        if offset == 0 {
            self.rules.clear();
        } else if offset != self.rules.len() {
            let staged = std::mem::take(&mut self.rules).len();
            return Err(Held::Refused {
                code: ErrorCode::Unexpected,
                message: format!(
                    "{what} part at rule {offset}, but {staged} rules were staged: \
                     a part was lost or repeated; the list is discarded, the one in force kept"
                ),
            });
        }
        let total = self.rules.len() + rules.len();
        if total > room {
            self.rules = Vec::new();
            return Err(Held::Refused {
                code: ErrorCode::TooLarge,
                message: format!(
                    "{what} refused: lists in the making may hold {} rules in all \
                     (over every connection), this one would take {total} of the \
                     {room} left; the one in force kept",
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
    /// Rules held until their lists' last parts.
    pub fn staged(&self) -> usize {
        self.spd.rules.len() + self.nat.rules.len()
    }

    /// Passes every request through, except the parts of a list: a part
    /// before the last is held here (`Err`, answered by the connection),
    /// the last becomes one request for the whole list. `elsewhere`: the
    /// rules other connections hold staged, so that all of them together
    /// stay within [`Request::MAX_LIST_RULES`].
    pub fn join(&mut self, req: Request, elsewhere: usize) -> Result<Request, Held> {
        let room =
            |other_list: usize| Request::MAX_LIST_RULES.saturating_sub(elsewhere + other_list);
        match req {
            Request::LoadSpd { part, rules } => {
                let room = room(self.nat.rules.len());
                Ok(Request::LoadSpd {
                    part: ListPart::WHOLE,
                    rules: self.spd.offer("SPD", part, rules, room)?,
                })
            }
            Request::LoadNat { part, rules } => {
                let room = room(self.spd.rules.len());
                Ok(Request::LoadNat {
                    part: ListPart::WHOLE,
                    rules: self.nat.offer("NAT rule list", part, rules, room)?,
                })
            }
            other => Ok(other),
        }
    }
}
