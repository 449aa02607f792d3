//! Standard output and error, and the environment, inside the sandbox.
//!
//! Rust's standard library on `wasm32-wasip2` writes stdout and stderr (a panic's message
//! included) through wasi-libc's `write`, and reads `RUST_BACKTRACE` through `getenv`.
//! Linked as they are, those two pull in 19 WASI functions (streams, terminals, stdin,
//! the environment, exit), and every call's instance then pays for linking them: about
//! 2 µs of the 9 µs a call costs the host (README, connector benchmark).
//!
//! This module defines both symbols for the connector instead, so the linker leaves
//! wasi-libc's out: each line written to stdout becomes an `info` line of the host's
//! `log` import and each line written to stderr an `error` line, which the host also
//! quotes when the call traps. The sandbox has no environment, so `getenv` finds nothing.
//! A text without a final newline is logged only once its line ends.

// Both functions implement C symbols, which is unsafe by definition; the contracts are
// stated at each.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ffi::{c_char, c_int};

use crate::bindings::trellis::connector::log::{Level, log};

/// WASI's `EBADF`.
const EBADF: c_int = 8;

unsafe extern "C" {
    /// wasi-libc's `errno`.
    fn __errno_location() -> *mut c_int;
}

thread_local! {
    /// The unfinished line of stdout and of stderr.
    static PENDING: RefCell<[Vec<u8>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
}

/// `write(2)` for the standard streams: complete lines go to the host's log.
///
/// # Safety
///
/// `buf` points to `len` readable bytes (the contract of `write`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn write(fd: c_int, buf: *const u8, len: usize) -> isize {
    let (stream, level) = match fd {
        1 => (0, Level::Info),
        2 => (1, Level::Error),
        _ => {
            // SAFETY: wasi-libc's `errno` is a valid, thread-local `int`.
            unsafe { *__errno_location() = EBADF };
            return -1;
        }
    };
    // SAFETY: the caller's contract.
    let bytes = unsafe { std::slice::from_raw_parts(buf, len) };
    // Taken out while its lines are logged: a write from inside `log` (a panic there)
    // starts from an empty line rather than finding the buffer borrowed.
    let mut pending = PENDING.with_borrow_mut(|p| std::mem::take(&mut p[stream]));
    pending.extend_from_slice(bytes);
    let mut start = 0;
    while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(&pending[start..start + end]);
        if !line.trim().is_empty() {
            log(level, line.trim_end());
        }
        start += end + 1;
    }
    pending.drain(..start);
    PENDING.with_borrow_mut(|p| p[stream] = pending);
    len as isize
}

/// `getenv(3)`: a connector has no environment.
#[unsafe(no_mangle)]
pub extern "C" fn getenv(_name: *const c_char) -> *mut c_char {
    std::ptr::null_mut()
}
