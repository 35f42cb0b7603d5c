//! One sync at a time per workspace: an advisory lock on `.antares/lock`.

use crate::error::{Error, IoContext, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

/// Held for as long as it lives; the kernel drops it if the process dies.
#[derive(Debug)]
pub struct WorkspaceLock {
    _file: File,
}

impl WorkspaceLock {
    /// Takes the lock. With `wait`, blocks until the holder is done (calling
    /// `on_wait` once with the holder's pid first); without, fails at once
    /// with [`Error::Locked`].
    pub fn acquire(path: &Path, wait: bool, on_wait: impl FnOnce(&str)) -> Result<WorkspaceLock> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .at(path.display())?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim().to_string();
                if !wait {
                    return Err(Error::Locked {
                        path: path.display().to_string(),
                        holder,
                    });
                }
                on_wait(&holder);
                file.lock().at(path.display())?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path.display(), e)),
        }
        // Record who holds it, for the message another process prints.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        Ok(WorkspaceLock { _file: file })
    }
}
