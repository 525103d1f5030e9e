//! Names of terminals from the kernel's `tty_nr` encoding, as `ps` prints
//! them in its TTY column (`pts/0`, `tty1`, `ttyS0`, `console`, `?`).

use std::collections::HashMap;

/// Splits the kernel's encoded device number (`new_encode_dev`).
pub fn split_dev(tty_nr: u32) -> (u32, u32) {
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    (major, minor)
}

/// One line of `/proc/tty/drivers`: a device prefix for a major number and
/// a range of minors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TtyDriver {
    pub prefix: String,
    pub major: u32,
    pub minors: (u32, u32),
}

/// Parses `/proc/tty/drivers` (`name  /dev/prefix  major  minor-range  type`).
pub fn parse_drivers(text: &str) -> Vec<TtyDriver> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 {
                return None;
            }
            let prefix = f[1].strip_prefix("/dev/")?.to_string();
            let major = f[2].parse().ok()?;
            let minors = match f[3].split_once('-') {
                Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                None => {
                    let m = f[3].parse().ok()?;
                    (m, m)
                }
            };
            Some(TtyDriver {
                prefix,
                major,
                minors,
            })
        })
        .collect()
}

/// Resolves terminal names, caching each device number.
#[derive(Debug, Default)]
pub struct TtyNames {
    drivers: Vec<TtyDriver>,
    cache: HashMap<u32, String>,
}

impl TtyNames {
    pub fn new(drivers: Vec<TtyDriver>) -> TtyNames {
        TtyNames {
            drivers,
            cache: HashMap::new(),
        }
    }

    /// Reads the driver table of this machine; an unreadable table falls
    /// back to the well-known majors.
    pub fn from_system() -> TtyNames {
        let text = std::fs::read_to_string("/proc/tty/drivers").unwrap_or_default();
        TtyNames::new(parse_drivers(&text))
    }

    /// The name for `tty_nr`, `?` when there is no controlling terminal.
    pub fn name(&mut self, tty_nr: u32) -> String {
        if tty_nr == 0 {
            return "?".to_string();
        }
        if let Some(n) = self.cache.get(&tty_nr) {
            return n.clone();
        }
        let n = self.resolve(tty_nr);
        self.cache.insert(tty_nr, n.clone());
        n
    }

    fn resolve(&self, tty_nr: u32) -> String {
        let (major, minor) = split_dev(tty_nr);
        match (major, minor) {
            (136..=143, m) => return format!("pts/{}", m + (major - 136) * 256),
            (4, m) if m < 64 => return format!("tty{m}"),
            (4, m) => return format!("ttyS{}", m - 64),
            (5, 1) => return "console".to_string(),
            _ => {}
        }
        for d in &self.drivers {
            if d.major == major && d.minors.0 <= minor && minor <= d.minors.1 {
                if d.minors.0 == d.minors.1 {
                    return d.prefix.clone();
                }
                return format!("{}{}", d.prefix, minor - d.minors.0);
            }
        }
        format!("{major},{minor}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DRIVERS: &str = "/dev/tty             /dev/tty        5       0 system:/dev/tty
serial               /dev/ttyS       4      64 serial
pty_slave            /dev/pts      136 0-1048575 pty:slave
usbserial            /dev/ttyUSB   188 0-511 serial
";

    #[test]
    fn names() {
        let mut t = TtyNames::new(parse_drivers(DRIVERS));
        assert_eq!(t.name(0), "?");
        assert_eq!(t.name(34816), "pts/0");
        assert_eq!(t.name(34817), "pts/1");
        assert_eq!(t.name((4 << 8) | 1), "tty1");
        assert_eq!(t.name((4 << 8) | 64), "ttyS0");
        assert_eq!(t.name((5 << 8) | 1), "console");
        assert_eq!(t.name((188 << 8) | 3), "ttyUSB3");
        // pts numbers above 255 spill into the high minor bits.
        assert_eq!(t.name((136 << 8) | (1 << 20) | 0x2c), "pts/300");
    }
}
