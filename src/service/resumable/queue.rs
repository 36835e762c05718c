//! The appends to one upload that reach this instance while another is running wait their
//! turn here, in the order they came, instead of being refused at once (423). A client may
//! then send its next chunk before the previous one is answered: the request waits, unread,
//! while the previous append finishes, and starts the moment it does. The catalog's lock and
//! the offset still decide who writes: the turn only orders the requests of one instance.
//!
//! A turn is waited for at most a bound (the upload lock's lease); past it, the append goes
//! on to the catalog's lock, which refuses it if the upload is still held.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;

use crate::domain::TenantId;

type Lanes = Mutex<HashMap<(TenantId, String), Arc<tokio::sync::Mutex<()>>>>;

/// The uploads with an append running or waiting on this instance.
#[derive(Default)]
pub struct Queues {
    lanes: Arc<Lanes>,
}

/// An append's turn at its upload; the next in line gets it when this is dropped.
pub struct Turn {
    // Dropped before the place, so that the last place to go sees nobody else holding the lane.
    _held: OwnedMutexGuard<()>,
    _place: Place,
}

/// A place in an upload's line: the lane stays in the map while anyone holds one.
struct Place {
    key: (TenantId, String),
    lane: Arc<tokio::sync::Mutex<()>>,
    lanes: Arc<Lanes>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut lanes = self.lanes.lock().expect("upload lanes");
        // Only the map's reference and this one: nobody holds or waits for a turn.
        if Arc::strong_count(&self.lane) == 2 {
            lanes.remove(&self.key);
        }
    }
}

impl Queues {
    /// The turn of `tenant`'s upload `id`, after the appends that came before; `None` when it
    /// did not come within `wait`.
    pub async fn turn(&self, tenant: &TenantId, id: &str, wait: Duration) -> Option<Turn> {
        let place = {
            let mut lanes = self.lanes.lock().expect("upload lanes");
            let key = (tenant.clone(), id.to_owned());
            let lane = lanes.entry(key.clone()).or_default().clone();
            Place { key, lane, lanes: self.lanes.clone() }
        };
        let held = tokio::time::timeout(wait, place.lane.clone().lock_owned()).await.ok()?;
        Some(Turn { _held: held, _place: place })
    }

    /// Uploads with an append running or waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lanes.lock().expect("upload lanes").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    #[tokio::test]
    async fn appends_to_one_upload_take_turns_in_order_and_leave_nothing_behind() {
        let queues = Arc::new(Queues::default());
        let first = queues.turn(&tenant("abc"), "u1", Duration::from_secs(5)).await.unwrap();
        // Another upload, and the same id of another tenant, do not wait.
        let other = queues.turn(&tenant("abc"), "u2", Duration::from_millis(10)).await;
        let foreign = queues.turn(&tenant("xyz"), "u1", Duration::from_millis(10)).await;
        assert!(other.is_some() && foreign.is_some());
        drop((other, foreign));

        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for n in 0..3 {
            let (queues, order) = (queues.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let turn = queues.turn(&tenant("abc"), "u1", Duration::from_secs(5)).await.unwrap();
                order.lock().unwrap().push(n);
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(turn);
            }));
            // Each is in line before the next arrives.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(order.lock().unwrap().is_empty(), "nobody passed the running append");
        drop(first);
        for w in waiting {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
        assert_eq!(queues.len(), 0);
    }

    #[tokio::test]
    async fn a_turn_not_given_within_the_wait_is_none_and_leaves_nothing_behind() {
        let queues = Queues::default();
        let held = queues.turn(&tenant("abc"), "u1", Duration::from_secs(5)).await.unwrap();
        assert!(queues.turn(&tenant("abc"), "u1", Duration::from_millis(30)).await.is_none());
        assert_eq!(queues.len(), 1, "the running append's lane stays");
        drop(held);
        assert_eq!(queues.len(), 0);
        assert!(queues.turn(&tenant("abc"), "u1", Duration::from_millis(30)).await.is_some());
        assert_eq!(queues.len(), 0);
    }
}
