//! The interaction harness's output buffer, shared with the nodes' loggers (etcd's
//! `RedirectLogger`): harness text and log lines land in one buffer in the order they are
//! written, and `with_indent` indents both.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use slog::{Drain, Key, Level, OwnedKVList, Record, Serializer, KV};

/// Level names, in order; a line is written when its level is at or above the current one.
pub const LEVEL_NAMES: [&str; 6] = ["DEBUG", "INFO", "WARN", "ERROR", "FATAL", "NONE"];
/// The level that silences everything, harness output included.
pub const LEVEL_NONE: usize = 5;

/// The output buffer of one environment. Clones share the buffer.
#[derive(Clone, Default)]
pub struct Output {
    buf: Arc<Mutex<String>>,
    level: Arc<AtomicUsize>,
}

impl Output {
    fn lock(&self) -> MutexGuard<'_, String> {
        // A panic inside a handler (caught by the runner) may poison the lock; the text is
        // still usable.
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Clears the buffer (at the start of every command).
    pub fn reset(&self) {
        self.lock().clear();
    }

    /// Takes the whole text.
    pub fn take(&self) -> String {
        std::mem::take(&mut *self.lock())
    }

    /// The current level (index into `LEVEL_NAMES`).
    pub fn level(&self) -> usize {
        self.level.load(Ordering::Relaxed)
    }

    /// Sets the level.
    pub fn set_level(&self, level: usize) {
        self.level.store(level, Ordering::Relaxed);
    }

    /// Sets the level by name (case-insensitive).
    pub fn set_level_by_name(&self, name: &str) -> Result<(), String> {
        match LEVEL_NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
        {
            Some(l) => {
                self.set_level(l);
                Ok(())
            }
            None => Err(format!(
                "log levels must be either of [{}]",
                LEVEL_NAMES.join(" ")
            )),
        }
    }

    /// Under level NONE every write is dropped.
    pub fn quiet(&self) -> bool {
        self.level() == LEVEL_NONE
    }

    /// Appends harness text (nothing when quiet).
    pub fn write(&self, s: &str) {
        if !self.quiet() {
            self.lock().push_str(s);
        }
    }

    /// Appends harness text and a newline (nothing when quiet).
    pub fn writeln(&self, s: &str) {
        if !self.quiet() {
            let mut b = self.lock();
            b.push_str(s);
            b.push('\n');
        }
    }

    /// Runs `f` with a fresh buffer, then appends what it wrote, each line indented by two
    /// spaces and ending in a newline (a partial last line gets one too).
    pub fn with_indent<R>(&self, f: impl FnOnce() -> R) -> R {
        let orig = std::mem::take(&mut *self.lock());
        let r = f();
        let mut b = self.lock();
        let inner = std::mem::replace(&mut *b, orig);
        for line in inner.lines() {
            b.push_str("  ");
            b.push_str(line);
            b.push('\n');
        }
        r
    }

    /// A logger writing into this buffer.
    pub fn logger(&self) -> slog::Logger {
        slog::Logger::root(RedirectDrain { out: self.clone() }, slog::o!())
    }
}

/// A slog drain writing `<LEVEL> <message>[ key=value ...]` lines into an [`Output`].
struct RedirectDrain {
    out: Output,
}

fn level_index(l: Level) -> usize {
    match l {
        Level::Critical => 4,
        Level::Error => 3,
        Level::Warning => 2,
        Level::Info => 1,
        Level::Debug | Level::Trace => 0,
    }
}

impl Drain for RedirectDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, _values: &OwnedKVList) -> Result<(), slog::Never> {
        let lvl = level_index(record.level());
        if lvl < self.out.level() {
            return Ok(());
        }
        let mut line = format!("{} {}", LEVEL_NAMES[lvl], record.msg());
        let mut kv = KvText(String::new());
        let _ = record.kv().serialize(record, &mut kv);
        line.push_str(&kv.0);
        if !line.ends_with('\n') {
            line.push('\n');
        }
        self.out.write(&line);
        Ok(())
    }
}

struct KvText(String);

impl Serializer for KvText {
    fn emit_arguments(&mut self, key: Key, val: &fmt::Arguments<'_>) -> slog::Result {
        use std::fmt::Write as _;
        let _ = write!(self.0, " {key}={val}");
        Ok(())
    }
}
