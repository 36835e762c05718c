//! The appends to one upload that reach this instance while another is running wait their
//! turn here, in the order they came, instead of being refused at once (423). A client may
//! then send its next chunk before the previous one is answered: the request waits, unread,
//! while the previous append finishes, and starts the moment it does. The catalog's lock and
//! the offset still decide who writes: the turn only orders the requests of one instance.
//!
//! An append whose bytes are written while the next one waits here keeps the upload's lock in
//! the catalog and hands it over ([`super::Held`]), with the upload as it will record it, and
//! leaves the line: the next append writes while this one makes its bytes durable and records
//! them, without a trip to the catalog for the lock. A lock handed over to nobody (the waiter
//! left first) is given to the release callback by the last to leave the line.
//!
//! A turn is waited for at most a bound (the upload lock's lease); past it, the append goes
//! on to the catalog's lock, which refuses it if the upload is still held.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;

use crate::domain::TenantId;

type Lane<H> = Arc<tokio::sync::Mutex<Option<H>>>;
type Lanes<H> = Mutex<HashMap<(TenantId, String), Lane<H>>>;
type Release<H> = Arc<dyn Fn(H) + Send + Sync>;

/// The uploads with an append running or waiting on this instance; `H` is what one append
/// hands over to the next (the service's [`super::Held`]).
pub struct Queues<H> {
    lanes: Arc<Lanes<H>>,
    release: Release<H>,
}

/// An append's turn at its upload; the next in line gets it when this is dropped.
pub struct Turn<H> {
    // Dropped before the place, so that the last place to go sees nobody else holding the lane.
    held: OwnedMutexGuard<Option<H>>,
    place: Place<H>,
}

/// A place in an upload's line: the lane stays in the map while anyone holds one.
struct Place<H> {
    key: (TenantId, String),
    lane: Lane<H>,
    lanes: Arc<Lanes<H>>,
    release: Release<H>,
}

impl<H> Drop for Place<H> {
    fn drop(&mut self) {
        let abandoned = {
            let mut lanes = self.lanes.lock().expect("upload lanes");
            // Only the map's reference and this one: nobody holds or waits for a turn, so the
            // lane is free and what it holds was handed over to nobody.
            if Arc::strong_count(&self.lane) == 2 {
                lanes.remove(&self.key);
                self.lane.try_lock().ok().and_then(|mut held| held.take())
            } else {
                None
            }
        };
        if let Some(held) = abandoned {
            (self.release)(held);
        }
    }
}

impl<H> Queues<H> {
    /// Lines that give what was handed over to nobody to `release`.
    pub fn new(release: impl Fn(H) + Send + Sync + 'static) -> Self {
        Self { lanes: Arc::default(), release: Arc::new(release) }
    }

    /// The turn of `tenant`'s upload `id`, after the appends that came before; `None` when it
    /// did not come within `wait`.
    pub async fn turn(&self, tenant: &TenantId, id: &str, wait: Duration) -> Option<Turn<H>> {
        let place = {
            let mut lanes = self.lanes.lock().expect("upload lanes");
            let key = (tenant.clone(), id.to_owned());
            let lane = lanes.entry(key.clone()).or_default().clone();
            Place { key, lane, lanes: self.lanes.clone(), release: self.release.clone() }
        };
        let held = tokio::time::timeout(wait, place.lane.clone().lock_owned()).await.ok()?;
        Some(Turn { held, place })
    }

    /// Uploads with an append running or waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lanes.lock().expect("upload lanes").len()
    }
}

impl<H> Turn<H> {
    /// What the append before this one handed over, if it did.
    pub fn take_over(&mut self) -> Option<H> {
        self.held.take()
    }

    /// Whether another append to this upload waits on this instance.
    pub fn someone_waits(&self) -> bool {
        // The map, this turn's place and its guard; each waiter adds its place and the lock it
        // waits on.
        Arc::strong_count(&self.place.lane) > 3
    }

    /// Leaves `held` (the upload's lock) to the next in line.
    pub fn hand_over(&mut self, held: H) {
        *self.held = Some(held);
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
        let queues = Arc::new(Queues::<String>::new(|_| {}));
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
        let queues = Queues::<String>::new(|_| {});
        let held = queues.turn(&tenant("abc"), "u1", Duration::from_secs(5)).await.unwrap();
        assert!(queues.turn(&tenant("abc"), "u1", Duration::from_millis(30)).await.is_none());
        assert_eq!(queues.len(), 1, "the running append's lane stays");
        drop(held);
        assert_eq!(queues.len(), 0);
        assert!(queues.turn(&tenant("abc"), "u1", Duration::from_millis(30)).await.is_some());
        assert_eq!(queues.len(), 0);
    }

    /// Queues whose lock handed over to nobody lands in the returned list.
    fn releasing() -> (Arc<Queues<String>>, Arc<Mutex<Vec<String>>>) {
        let released = Arc::new(Mutex::new(Vec::new()));
        let sink = released.clone();
        (Arc::new(Queues::new(move |held| sink.lock().unwrap().push(held))), released)
    }

    /// Waits until `turn` sees someone behind it.
    async fn until_someone_waits(turn: &Turn<String>) {
        for _ in 0..500 {
            if turn.someone_waits() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("nobody came to wait");
    }

    #[tokio::test]
    async fn a_lock_handed_over_goes_to_the_next_in_line_and_nowhere_else() {
        let (queues, released) = releasing();
        let mut first = queues.turn(&tenant("abc"), "u1", Duration::from_secs(5)).await.unwrap();
        assert!(!first.someone_waits(), "alone in line");
        assert!(first.take_over().is_none(), "nothing was handed over to the first");
        // Another upload's and another tenant's lines are not behind this one.
        let other = queues.turn(&tenant("abc"), "u2", Duration::from_secs(5)).await.unwrap();
        let foreign = queues.turn(&tenant("xyz"), "u1", Duration::from_secs(5)).await.unwrap();
        assert!(!first.someone_waits());

        let next = tokio::spawn({
            let queues = queues.clone();
            async move {
                let mut turn = queues.turn(&tenant("abc"), "u1", Duration::from_secs(5)).await.unwrap();
                let held = turn.take_over();
                (held, turn.someone_waits())
            }
        });
        until_someone_waits(&first).await;
        first.hand_over("lock-1".to_owned());
        drop(first);
        assert_eq!(next.await.unwrap(), (Some("lock-1".to_owned()), false));
        let (mut other, mut foreign) = (other, foreign);
        assert!(other.take_over().is_none() && foreign.take_over().is_none());
        drop((other, foreign));
        assert!(released.lock().unwrap().is_empty(), "taken over, not released");
        assert_eq!(queues.len(), 0);
    }

    #[tokio::test]
    async fn a_lock_handed_over_to_nobody_is_released_by_the_last_to_leave() {
        let (queues, released) = releasing();
        // The waiter gives up (its request is cancelled) after the holder saw it.
        let mut first = queues.turn(&tenant("abc"), "u1", Duration::from_secs(5)).await.unwrap();
        let waiter = tokio::spawn({
            let queues = queues.clone();
            async move { queues.turn(&tenant("abc"), "u1", Duration::from_secs(5)).await.map(|_| ()) }
        });
        until_someone_waits(&first).await;
        waiter.abort();
        let _ = waiter.await;
        first.hand_over("lock-1".to_owned());
        assert!(released.lock().unwrap().is_empty(), "not while the holder is in line");
        drop(first);
        assert_eq!(*released.lock().unwrap(), ["lock-1"]);
        assert_eq!(queues.len(), 0);

        // The next in line gets its turn but leaves without taking the lock over.
        let mut first = queues.turn(&tenant("abc"), "u1", Duration::from_secs(5)).await.unwrap();
        let waiter = tokio::spawn({
            let queues = queues.clone();
            async move { drop(queues.turn(&tenant("abc"), "u1", Duration::from_secs(5)).await.unwrap()) }
        });
        until_someone_waits(&first).await;
        first.hand_over("lock-2".to_owned());
        drop(first);
        waiter.await.unwrap();
        assert_eq!(*released.lock().unwrap(), ["lock-1", "lock-2"]);
        assert_eq!(queues.len(), 0);
    }
}
