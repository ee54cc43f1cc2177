//! What a request holds while it is upstream: a concurrency slot and a quota reservation,
//! both given back when dropped.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::quota::observation::QuotaObservation;
use crate::quota::state::TrackerKey;
use crate::quota::tracker::Answer;
use crate::store::{Settled, Settlement};

/// Where a reservation settles: the quota it was taken from, and the fleet's store when
/// Redis granted it. A trait, so that a grant needs nothing of the scheduler that hands it
/// out (the scheduler implements it).
pub(crate) trait Settle: Send + Sync + std::fmt::Debug {
    /// Applies the answer to a request reserved on `key`; returns the end of the pause it
    /// caused, if any, and the key of the quota the answer's facts went to.
    fn observe(
        &self,
        key: &TrackerKey,
        route: &str,
        answer: &Answer<'_>,
    ) -> (Option<Instant>, TrackerKey);

    /// Settles a reservation whose request never reached the supplier.
    fn release(&self, key: &TrackerKey);

    /// Settles a reservation whose request reached the supplier but got no answer.
    fn spend(&self, key: &TrackerKey, sent_at: Instant);

    /// Tells the fleet's store how a unit it granted ended (off the request path).
    fn settle_fleet(&self, settlement: Settlement);
}

/// A unit of quota taken for one attempt. It ends one of three ways:
/// - [`Reservation::complete`] with the response: the quota learns from it;
/// - dropped before [`Reservation::mark_sent`] (nothing reached the supplier): released;
/// - dropped after it (client gone, attempt timed out, connection broken mid-way): the
///   supplier counted the request, so the unit stays spent.
#[derive(Debug)]
pub struct Reservation {
    shared: Arc<dyn Settle>,
    key: TrackerKey,
    sent_at: Instant,
    sent: bool,
    done: bool,
    /// The fleet store's ticket, when Redis granted the unit.
    ticket: Option<String>,
}

impl Reservation {
    pub(super) fn new(shared: Arc<dyn Settle>, key: TrackerKey, sent_at: Instant) -> Self {
        Self {
            shared,
            key,
            sent_at,
            sent: false,
            done: false,
            ticket: None,
        }
    }

    pub(super) fn with_ticket(
        shared: Arc<dyn Settle>,
        key: TrackerKey,
        sent_at: Instant,
        ticket: String,
    ) -> Self {
        let mut reservation = Self::new(shared, key, sent_at);
        reservation.ticket = Some(ticket);
        reservation
    }

    /// Tells the fleet's store how the unit ended (off the request path).
    fn settle_fleet(&mut self, target: Option<TrackerKey>, route: &str, outcome: Settled) {
        let Some(ticket) = self.ticket.take() else {
            return;
        };
        self.shared.settle_fleet(Settlement {
            target: target.unwrap_or_else(|| self.key.clone()),
            key: self.key.clone(),
            route: route.into(),
            ticket,
            sent_at: self.sent_at,
            outcome,
        });
    }

    /// The request is being written to the supplier: from now on, dropping the reservation
    /// spends its unit.
    pub fn mark_sent(&mut self) {
        self.sent = true;
        self.sent_at = Instant::now();
    }

    /// Nothing reached the supplier after all (the connection was refused): the unit goes
    /// back to the pool.
    pub fn release(mut self) {
        self.sent = false;
    }

    /// Reconciles the reservation with the response to a request on `route`: learns from
    /// its headers and, on a 429-like answer, pauses the quota. Returns the end of that pause.
    pub fn complete(
        mut self,
        route: &str,
        status: StatusCode,
        observation: Option<&QuotaObservation>,
    ) -> Option<Instant> {
        self.done = true;
        let now = Instant::now();
        let answer = Answer {
            sent_at: self.sent_at,
            received_at: now,
            status,
            observation,
            jitter: rand::random(),
        };
        let (pause, target) = self.shared.observe(&self.key, route, &answer);
        self.settle_fleet(
            Some(target),
            route,
            Settled::Answered {
                received_at: now,
                status,
                observation: observation.cloned(),
            },
        );
        pause
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.sent {
            self.shared.spend(&self.key, self.sent_at);
            self.settle_fleet(None, "", Settled::Spent);
        } else {
            self.shared.release(&self.key);
            self.settle_fleet(None, "", Settled::Released);
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
