//! Pure analysis over a [`crate::model::Snapshot`]: selection, roles,
//! titles, the tree and its folding. Nothing here touches `/proc`.

pub mod compact;
#[cfg(test)]
pub mod fixture;
pub mod roles;
pub mod select;
pub mod title;
pub mod tree;
