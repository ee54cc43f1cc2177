//! What a request holds while it is upstream: a concurrency slot and a quota reservation,
//! both given back when dropped.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::dispatch::Shared;
use crate::quota::observation::QuotaObservation;

/// A unit of quota taken for one attempt. Dropped without [`Reservation::complete`] (no
/// response: connection error, timeout, client gone), it is released.
#[derive(Debug)]
pub struct Reservation {
    shared: Arc<Shared>,
    partition: Option<String>,
    sent_at: Instant,
    done: bool,
}

impl Reservation {
    pub(super) fn new(shared: Arc<Shared>, partition: Option<String>, sent_at: Instant) -> Self {
        Self {
            shared,
            partition,
            sent_at,
            done: false,
        }
    }

    /// Reconciles the reservation with the response: learns from its headers and, on a
    /// 429-like answer, pauses the quota. Returns the end of that pause.
    pub fn complete(
        mut self,
        status: StatusCode,
        observation: Option<&QuotaObservation>,
    ) -> Option<Instant> {
        self.done = true;
        let now = Instant::now();
        self.shared.observe(
            self.partition.as_deref(),
            self.sent_at,
            now,
            status,
            observation,
        )
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.done {
            self.shared.release(self.partition.as_deref());
        }
    }
}

/// Permission to send one attempt now.
#[derive(Debug)]
pub struct Grant {
    /// The quota unit; complete it with the response.
    pub reservation: Reservation,
    /// How long the request waited for quota and a slot.
    pub queue_wait: Duration,
    slot: OwnedSemaphorePermit,
}

impl Grant {
    pub(super) fn new(
        reservation: Reservation,
        slot: OwnedSemaphorePermit,
        queue_wait: Duration,
    ) -> Self {
        Self {
            reservation,
            queue_wait,
            slot,
        }
    }

    /// Splits the grant: the reservation to complete, and the slot to hold until the response
    /// body has been sent.
    pub fn into_parts(self) -> (Reservation, OwnedSemaphorePermit) {
        (self.reservation, self.slot)
    }
}
