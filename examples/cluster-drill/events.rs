//! Every answer a client got, classified, and the fault phases they fall into.

use std::time::Instant;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    Ok,
    /// 503 with Retry-After (from coffer, or from the balancer when no instance could answer).
    Unavailable,
    /// The connection failed or was cut.
    Connection,
    /// 423 `upload-busy` (a dead instance's lease on a resumable upload) or 429.
    Busy,
    /// Never acceptable: a 500, a 503 without Retry-After, wrong bytes, a lost or undone write.
    Violation(String),
}

#[derive(Clone, Debug)]
pub struct Event {
    /// Seconds since the drill started, when the answer came.
    pub at: f64,
    pub op: &'static str,
    pub class: Class,
}

#[derive(Clone)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Self {
        Self(Instant::now())
    }
    pub fn now(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// One fault: injected at `start`, repaired at `restore`, watched until `end`.
pub struct Phase {
    pub name: &'static str,
    pub start: f64,
    pub restore: f64,
    pub end: f64,
}

impl Phase {
    /// Errors (503s and connection failures) within the phase, all answers within it, and how
    /// long after the repair the last error came (0 when none came after it).
    pub fn tally(&self, events: &[Event]) -> (usize, usize, f64) {
        let inside: Vec<&Event> = events.iter().filter(|e| e.at >= self.start && e.at < self.end).collect();
        let errors: Vec<&&Event> =
            inside.iter().filter(|e| matches!(e.class, Class::Unavailable | Class::Connection)).collect();
        let last = errors.iter().map(|e| e.at).fold(self.restore, f64::max);
        (errors.len(), inside.len(), last - self.restore)
    }
}
