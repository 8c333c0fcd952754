//! A table of an engine's records (ISAKMP SAs, Quick Modes, SA pairs)
//! that finds them by key instead of by scanning: a hub holds one record
//! or more per peer, and every message, expiry or delete that scanned all
//! of them made a setup cost grow with the number of peers.
//!
//! Rows keep the order they were added in (the engines' first-match
//! lookups pick the oldest, as they did over a `Vec`), and are named by a
//! [`RowId`] that stays valid while the row is there, however many other
//! rows come and go.
//!
//! A row's keys are read when it is added and when it is removed, so the
//! fields they come from must not change in between; debug builds check
//! that on removal.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::ops::{Index, IndexMut};

/// A row of a [`Table`], in the order rows were added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowId(u64);

/// What a row is found by: every key a row has lists it.
pub trait Keyed {
    type Key: Hash + Eq + Clone;
    /// The keys of this row. Must not change while the row is in a table.
    fn keys(&self) -> impl IntoIterator<Item = Self::Key>;
}

#[derive(Debug)]
pub struct Table<T: Keyed> {
    rows: BTreeMap<RowId, T>,
    next: u64,
    /// Key -> the rows with it, in ascending order.
    index: HashMap<T::Key, Vec<RowId>>,
}

impl<T: Keyed> Default for Table<T> {
    fn default() -> Self {
        Table {
            rows: BTreeMap::new(),
            next: 0,
            index: HashMap::new(),
        }
    }
}

impl<T: Keyed> Table<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Adds `row` after every row there; its id is greater than theirs.
    pub fn push(&mut self, row: T) -> RowId {
        let id = RowId(self.next);
        self.next += 1;
        for k in row.keys() {
            // Ids only grow, so appending keeps each list ascending.
            self.index.entry(k).or_default().push(id);
        }
        self.rows.insert(id, row);
        id
    }

    pub fn remove(&mut self, id: RowId) -> Option<T> {
        let row = self.rows.remove(&id)?;
        for k in row.keys() {
            let Some(ids) = self.index.get_mut(&k) else {
                debug_assert!(false, "a row's key changed while it was in the table");
                continue;
            };
            match ids.binary_search(&id) {
                Ok(at) => {
                    ids.remove(at);
                }
                Err(_) => debug_assert!(false, "a row's key changed while it was in the table"),
            }
            if ids.is_empty() {
                self.index.remove(&k);
            }
        }
        Some(row)
    }

    pub fn get(&self, id: RowId) -> Option<&T> {
        self.rows.get(&id)
    }

    pub fn get_mut(&mut self, id: RowId) -> Option<&mut T> {
        self.rows.get_mut(&id)
    }

    pub fn contains(&self, id: RowId) -> bool {
        self.rows.contains_key(&id)
    }

    /// Every row and its id, oldest first.
    pub fn entries(&self) -> impl DoubleEndedIterator<Item = (RowId, &T)> {
        self.rows.iter().map(|(id, row)| (*id, row))
    }

    /// Every row, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.rows.values()
    }

    /// Every row, oldest first. The keys must not be changed through it.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.rows.values_mut()
    }

    /// The ids of every row, oldest first (to remove some while walking).
    pub fn ids(&self) -> Vec<RowId> {
        self.rows.keys().copied().collect()
    }

    /// The rows with `key`, oldest first.
    pub fn with<'a>(&'a self, key: &T::Key) -> impl DoubleEndedIterator<Item = (RowId, &'a T)> {
        self.index
            .get(key)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            // Always there unless a row's key changed (debug builds
            // assert that it did not): then skipped, not a panic.
            .filter_map(|id| Some((*id, self.rows.get(id)?)))
    }

    /// The ids of the rows with `key`, oldest first.
    pub fn ids_with(&self, key: &T::Key) -> Vec<RowId> {
        self.index.get(key).cloned().unwrap_or_default()
    }

    /// The first (oldest) row with `key` for which `pred` holds.
    pub fn find(&self, key: &T::Key, mut pred: impl FnMut(&T) -> bool) -> Option<RowId> {
        self.with(key).find(|(_, row)| pred(row)).map(|(id, _)| id)
    }

    /// Removes the rows with `key` for which `pred` holds; returns them
    /// oldest first.
    pub fn remove_with(&mut self, key: &T::Key, mut pred: impl FnMut(&T) -> bool) -> Vec<T> {
        let ids: Vec<RowId> = self
            .with(key)
            .filter(|(_, row)| pred(row))
            .map(|(id, _)| id)
            .collect();
        ids.into_iter().filter_map(|id| self.remove(id)).collect()
    }

    /// Removes the rows for which `pred` holds, of all rows (a walk of
    /// the table: for what is rare); returns them oldest first.
    pub fn remove_where(&mut self, mut pred: impl FnMut(&T) -> bool) -> Vec<T> {
        let ids: Vec<RowId> = self
            .entries()
            .filter(|(_, row)| pred(row))
            .map(|(id, _)| id)
            .collect();
        ids.into_iter().filter_map(|id| self.remove(id)).collect()
    }

    /// Removes every row; returns them oldest first.
    pub fn take_all(&mut self) -> Vec<T> {
        self.index.clear();
        std::mem::take(&mut self.rows).into_values().collect()
    }
}

impl<T: Keyed> Index<RowId> for Table<T> {
    type Output = T;
    /// Panics if the row is gone: an engine's bug, as an index out of a
    /// `Vec`'s bounds was.
    fn index(&self, id: RowId) -> &T {
        &self.rows[&id]
    }
}

impl<T: Keyed> IndexMut<RowId> for Table<T> {
    fn index_mut(&mut self, id: RowId) -> &mut T {
        self.rows.get_mut(&id).expect("a row of the table")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A row with two keys: its "peer" and its "spi".
    #[derive(Debug, Clone, PartialEq)]
    struct Row {
        peer: u8,
        spi: u8,
        n: u32,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    enum Key {
        Peer(u8),
        Spi(u8),
    }

    impl Keyed for Row {
        type Key = Key;
        fn keys(&self) -> impl IntoIterator<Item = Key> {
            [Key::Peer(self.peer), Key::Spi(self.spi)]
        }
    }

    #[test]
    fn rows_keep_their_order_and_ids_across_removals() {
        let mut t = Table::new();
        let a = t.push(Row {
            peer: 1,
            spi: 10,
            n: 0,
        });
        let b = t.push(Row {
            peer: 2,
            spi: 20,
            n: 1,
        });
        let c = t.push(Row {
            peer: 1,
            spi: 30,
            n: 2,
        });
        assert_eq!(t.remove(b).map(|r| r.n), Some(1));
        assert_eq!(t.remove(b), None);
        assert_eq!(t[a].n, 0);
        assert_eq!(t[c].n, 2);
        let peers: Vec<RowId> = t.with(&Key::Peer(1)).map(|(id, _)| id).collect();
        assert_eq!(peers, vec![a, c]);
        assert_eq!(t.find(&Key::Peer(1), |r| r.spi == 30), Some(c));
        assert_eq!(t.with(&Key::Peer(2)).count(), 0);
        let d = t.push(Row {
            peer: 2,
            spi: 20,
            n: 3,
        });
        assert!(d > c);
        assert_eq!(t.ids(), vec![a, c, d]);
        assert_eq!(t.remove_with(&Key::Peer(1), |r| r.n == 2).len(), 1);
        assert_eq!(t.ids(), vec![a, d]);
        assert_eq!(t.take_all().len(), 2);
        assert!(t.is_empty() && t.index.is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8, u8),
        Remove(usize),
        RemoveWith(u8, u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..4, 0u8..6).prop_map(|(p, s)| Op::Push(p, s)),
            (0usize..16).prop_map(Op::Remove),
            (0u8..4, 0u32..3).prop_map(|(p, m)| Op::RemoveWith(p, m)),
        ]
    }

    proptest! {
        /// Every lookup gives what a scan of a `Vec` in insertion order
        /// gives, whatever was added and removed before.
        #[test]
        fn lookups_match_a_scan(ops in proptest::collection::vec(op(), 0..64)) {
            let mut t = Table::new();
            let mut model: Vec<(RowId, Row)> = Vec::new();
            let mut n = 0;
            for op in ops {
                match op {
                    Op::Push(peer, spi) => {
                        let row = Row { peer, spi, n };
                        n += 1;
                        let id = t.push(row.clone());
                        model.push((id, row));
                    }
                    Op::Remove(i) => {
                        if !model.is_empty() {
                            let (id, row) = model.remove(i % model.len());
                            prop_assert_eq!(t.remove(id), Some(row));
                        }
                    }
                    Op::RemoveWith(peer, m) => {
                        let gone = t.remove_with(&Key::Peer(peer), |r| r.n % 3 == m);
                        let want: Vec<Row> = model
                            .iter()
                            .filter(|(_, r)| r.peer == peer && r.n % 3 == m)
                            .map(|(_, r)| r.clone())
                            .collect();
                        model.retain(|(_, r)| !(r.peer == peer && r.n % 3 == m));
                        prop_assert_eq!(gone, want);
                    }
                }
                prop_assert_eq!(t.len(), model.len());
                let all: Vec<RowId> = t.entries().map(|(id, _)| id).collect();
                let want: Vec<RowId> = model.iter().map(|(id, _)| *id).collect();
                prop_assert_eq!(all, want);
                for k in 0..6u8 {
                    for key in [Key::Peer(k), Key::Spi(k)] {
                        let got: Vec<RowId> = t.with(&key).map(|(id, _)| id).collect();
                        let want: Vec<RowId> = model
                            .iter()
                            .filter(|(_, r)| r.keys().into_iter().any(|x| x == key))
                            .map(|(id, _)| *id)
                            .collect();
                        prop_assert_eq!(got, want);
                    }
                }
            }
            // Nothing left behind in the index once the rows are gone.
            for id in t.ids() {
                t.remove(id);
            }
            prop_assert!(t.index.is_empty());
        }
    }
}
