//! The waiting line of one upstream: three FIFO classes (`Headroom-Priority: high | normal |
//! low`) served by a due time that ages lower classes in, so `low` is never starved.

use std::collections::VecDeque;
use std::time::Duration;

use http::HeaderValue;
use tokio::time::Instant;

use crate::quota::state::TrackerKey;

/// The `Headroom-Priority` request header.
pub static HEADROOM_PRIORITY: http::HeaderName = http::HeaderName::from_static("headroom-priority");

/// A request's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Priority {
    /// Urgent work (a recall investigation): served first.
    High,
    /// Everything else.
    #[default]
    Normal,
    /// Bulk back-fills.
    Low,
}

impl Priority {
    /// From the `Headroom-Priority` header; absent or unknown values are `normal`.
    pub fn from_header(value: Option<&HeaderValue>) -> Self {
        match value.map(|v| v.as_bytes().trim_ascii().to_ascii_lowercase()) {
            Some(v) if v == b"high" => Self::High,
            Some(v) if v == b"low" => Self::Low,
            _ => Self::Normal,
        }
    }

    /// The label used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Normal => "normal",
            Self::Low => "low",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::High => 0,
            Self::Normal => 1,
            Self::Low => 2,
        }
    }

    /// How much later than a `high` request of the same arrival time this class is due: a
    /// `low` request is served before any `high` one that arrived `max_wait / 2` after it.
    fn delay(self, max_wait: Duration) -> Duration {
        match self {
            Self::High => Duration::ZERO,
            Self::Normal => max_wait / 4,
            Self::Low => max_wait / 2,
        }
    }
}

/// One waiting request's place in the queue.
#[derive(Debug)]
pub struct Place<T> {
    /// Its class.
    pub priority: Priority,
    /// The quota it is reserved against (partition, resource).
    pub key: TrackerKey,
    /// When it arrived.
    pub enqueued: Instant,
    /// When it gives up (`queue.max_wait` after it arrived).
    pub deadline: Instant,
    /// What the scheduler hands the grant through.
    pub slot: T,
}

impl<T> Place<T> {
    fn due(&self, max_wait: Duration) -> Instant {
        self.enqueued + self.priority.delay(max_wait)
    }
}

/// Where an entry stands: its class and its index in that class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    class: usize,
    index: usize,
}

/// The three classes.
#[derive(Debug)]
pub struct Queue<T> {
    classes: [VecDeque<Place<T>>; 3],
    max_wait: Duration,
}

impl<T> Queue<T> {
    /// An empty queue; `max_wait` sets how fast lower classes age in.
    pub fn new(max_wait: Duration) -> Self {
        Self {
            classes: [VecDeque::new(), VecDeque::new(), VecDeque::new()],
            max_wait,
        }
    }

    /// Adds a request at the back of its class.
    pub fn push(&mut self, entry: Place<T>) {
        self.classes[entry.priority.index()].push_back(entry);
    }

    /// Entries stored (including ones whose waiter has left but were not swept yet).
    pub fn len(&self) -> usize {
        self.classes.iter().map(VecDeque::len).sum()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.classes.iter().all(VecDeque::is_empty)
    }

    /// The entry to serve next: the earliest due among the three class heads.
    pub fn next(&self) -> Option<Position> {
        (0..3)
            .filter_map(|class| {
                let head = self.classes[class].front()?;
                Some((head.due(self.max_wait), class))
            })
            .min()
            .map(|(_, class)| Position { class, index: 0 })
    }

    /// Every entry in serving order (due time; FIFO within a class).
    pub fn in_order(&self) -> Vec<Position> {
        let mut all: Vec<(Instant, usize, usize)> = self
            .classes
            .iter()
            .enumerate()
            .flat_map(|(class, entries)| {
                entries
                    .iter()
                    .enumerate()
                    .map(move |(index, e)| (e.due(self.max_wait), class, index))
            })
            .collect();
        all.sort_unstable();
        all.into_iter()
            .map(|(_, class, index)| Position { class, index })
            .collect()
    }

    /// The entry at `at`.
    pub fn get(&self, at: Position) -> Option<&Place<T>> {
        self.classes.get(at.class)?.get(at.index)
    }

    /// Takes the entry at `at` out.
    pub fn remove(&mut self, at: Position) -> Option<Place<T>> {
        self.classes.get_mut(at.class)?.remove(at.index)
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Place<T>) -> bool) {
        for class in &mut self.classes {
            class.retain(&mut keep);
        }
    }

    /// Takes out every entry for which `take` is true.
    pub fn drain_where(&mut self, mut take: impl FnMut(&Place<T>) -> bool) -> Vec<Place<T>> {
        let mut taken = Vec::new();
        for class in &mut self.classes {
            let mut kept = VecDeque::with_capacity(class.len());
            for entry in class.drain(..) {
                if take(&entry) {
                    taken.push(entry);
                } else {
                    kept.push_back(entry);
                }
            }
            *class = kept;
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(priority: Priority, at: Instant, id: u32) -> Place<u32> {
        Place {
            priority,
            key: TrackerKey::default(),
            enqueued: at,
            deadline: at + Duration::from_secs(30),
            slot: id,
        }
    }

    fn serve_all(mut queue: Queue<u32>) -> Vec<u32> {
        let mut order = Vec::new();
        while let Some(at) = queue.next() {
            order.push(queue.remove(at).expect("entry").slot);
        }
        order
    }

    #[test]
    fn header_values() {
        let cases = [
            (Some("high"), Priority::High),
            (Some(" HIGH "), Priority::High),
            (Some("low"), Priority::Low),
            (Some("normal"), Priority::Normal),
            (Some("urgent"), Priority::Normal),
            (None, Priority::Normal),
        ];
        for (value, want) in cases {
            let value = value.map(|v| HeaderValue::from_str(v).expect("value"));
            assert_eq!(Priority::from_header(value.as_ref()), want, "{value:?}");
        }
    }

    #[test]
    fn high_first_fifo_within_a_class() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut queue = Queue::new(Duration::from_secs(30));
        queue.push(entry(Priority::Low, t0, 1));
        queue.push(entry(Priority::Normal, t0 + ms(1), 2));
        queue.push(entry(Priority::High, t0 + ms(2), 3));
        queue.push(entry(Priority::Normal, t0 + ms(3), 4));
        queue.push(entry(Priority::High, t0 + ms(4), 5));
        assert_eq!(serve_all(queue), [3, 5, 2, 4, 1]);
    }

    #[test]
    fn low_ages_in_ahead_of_later_high_requests() {
        let t0 = Instant::now();
        let max_wait = Duration::from_secs(30);
        let mut queue = Queue::new(max_wait);
        queue.push(entry(Priority::Low, t0, 1));
        queue.push(entry(Priority::High, t0 + Duration::from_secs(14), 2));
        // A high request arriving more than max_wait/2 after the low one is due after it.
        queue.push(entry(Priority::High, t0 + Duration::from_secs(16), 3));
        assert_eq!(serve_all(queue), [2, 1, 3]);
    }

    #[test]
    fn in_order_matches_next() {
        let t0 = Instant::now();
        let mut queue = Queue::new(Duration::from_secs(8));
        for (i, p) in [
            Priority::Low,
            Priority::High,
            Priority::Normal,
            Priority::High,
        ]
        .into_iter()
        .enumerate()
        {
            queue.push(entry(p, t0 + Duration::from_secs(i as u64), i as u32));
        }
        let ordered: Vec<u32> = queue
            .in_order()
            .into_iter()
            .map(|at| queue.get(at).expect("entry").slot)
            .collect();
        assert_eq!(ordered, serve_all(queue));
    }

    #[test]
    fn drain_where_takes_matching_entries() {
        let t0 = Instant::now();
        let mut queue = Queue::new(Duration::from_secs(30));
        for i in 0..6 {
            queue.push(entry(Priority::Normal, t0, i));
        }
        let taken: Vec<u32> = queue
            .drain_where(|e| e.slot % 2 == 0)
            .into_iter()
            .map(|e| e.slot)
            .collect();
        assert_eq!(taken, [0, 2, 4]);
        assert_eq!(queue.len(), 3);
    }
}
