//! Standard output that ends quietly on a closed pipe (`d4 sensor list | head`).
//!
//! Rust ignores SIGPIPE, so writing to a closed pipe is an `EPIPE` error (and a panic in
//! `println!`). Every command prints through [`outln!`]/[`out!`]; a broken pipe there, an
//! error whose cause is a broken pipe, or a panic of a library's `println!` on one ends the
//! process quietly with status 141 (128 + SIGPIPE, what a shell reports for a command
//! killed by SIGPIPE), without a message. SIGPIPE itself stays ignored: a server writing
//! to a closed socket must get an error, not die.

use std::io::{self, Write};

/// Exit status on a closed standard output.
pub const BROKEN_PIPE_EXIT: i32 = 141;

/// Prints to stdout; a closed pipe ends the process quietly.
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::write(format_args!($($arg)*), false) };
}

/// Prints a line to stdout; a closed pipe ends the process quietly.
macro_rules! outln {
    () => { $crate::out::write(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::out::write(format_args!($($arg)*), true) };
}

pub fn write(args: std::fmt::Arguments<'_>, newline: bool) {
    let stdout = io::stdout();
    let mut lock = stdout.lock();
    let r = lock.write_fmt(args).and_then(|()| {
        if newline {
            lock.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    if let Err(e) = r {
        if e.kind() == io::ErrorKind::BrokenPipe {
            quiet_exit();
        }
        eprintln!("d4: error: writing to stdout: {e}");
        std::process::exit(2);
    }
}

/// Ends the process for a closed stdout, without a message.
pub fn quiet_exit() -> ! {
    std::process::exit(BROKEN_PIPE_EXIT)
}

/// Whether an error was caused by a closed pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// A panic of `println!` on a closed stdout (in a library) ends quietly too; any other
/// panic is reported as before.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            quiet_exit();
        }
        previous(info);
    }));
}
