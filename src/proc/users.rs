//! User names for uids, looked up once per uid.

use std::collections::HashMap;

use nix::unistd::{Uid, User};

/// A cache over the system's user database (NSS through libc, like `ps`).
#[derive(Debug, Default)]
pub struct UserNames {
    cache: HashMap<u32, Option<String>>,
}

impl UserNames {
    /// The user name of `uid`, or `None` when the database has no entry.
    pub fn name(&mut self, uid: u32) -> Option<String> {
        self.cache
            .entry(uid)
            .or_insert_with(|| {
                User::from_uid(Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .clone()
    }
}
