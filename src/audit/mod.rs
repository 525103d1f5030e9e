//! Reading signal records from the Linux audit log.
