//! What `load` gives of a session's deliveries: those in flight, and the first `window`
//! queued ones by sequence number; the rest are only counted ([`Unread`]), so that a
//! restart with millions of queued messages reads back no more than the broker keeps in
//! memory. Stores read deliveries in the order they keep them, which need not be the
//! sessions' order (a retried batch stores some late), so this takes them in any order.

use super::{DeliveryState, StoredDelivery, Unread};

/// One session's deliveries as a store reads them.
#[derive(Debug)]
pub(super) struct Windowed {
    window: usize,
    kept: Vec<StoredDelivery>,
    /// Queued deliveries in `kept`.
    queued: usize,
    /// Every queued delivery from `unread.first_seq` on is here, none below it is.
    unread: Option<Unread>,
}

impl Windowed {
    /// Keeps at most `window` queued deliveries (`usize::MAX`: all).
    pub(super) fn new(window: usize) -> Self {
        Self {
            window,
            kept: Vec::new(),
            queued: 0,
            unread: None,
        }
    }

    /// Whether a queued delivery `seq` would only be counted: then the caller need not
    /// build it, and gives [`Windowed::count`] what it knows of it instead.
    pub(super) fn counts_only(&self, seq: u64, state: DeliveryState) -> bool {
        state == DeliveryState::Queued && self.unread.is_some_and(|u| seq >= u.first_seq)
    }

    /// Counts a queued delivery for which [`Windowed::counts_only`] said so.
    pub(super) fn count(&mut self, seq: u64, payload_len: usize, message_id: u64) {
        Unread::add(&mut self.unread, seq, payload_len, message_id);
    }

    /// Takes a delivery for which [`Windowed::counts_only`] said no.
    pub(super) fn keep(&mut self, delivery: StoredDelivery) {
        if delivery.state == DeliveryState::Queued {
            self.queued += 1;
        }
        self.kept.push(delivery);
        // Trimmed at twice the window, so that sorting is paid once per `window` deliveries.
        if self.queued > self.window.saturating_mul(2) {
            self.trim();
        }
    }

    /// Takes a delivery, counting it if it is past the window.
    pub(super) fn offer(&mut self, delivery: StoredDelivery) {
        if self.counts_only(delivery.seq, delivery.state) {
            self.count(
                delivery.seq,
                delivery.message.message.payload.len(),
                delivery.message.id,
            );
        } else {
            self.keep(delivery);
        }
    }

    /// The deliveries kept, in sequence-number order, and what was left unread.
    pub(super) fn finish(mut self) -> (Vec<StoredDelivery>, Option<Unread>) {
        self.trim();
        (self.kept, self.unread)
    }

    /// Sorts what is kept and counts the queued deliveries past the window instead. They
    /// come after every queued delivery kept, and before every one counted already.
    fn trim(&mut self) {
        self.kept.sort_by_key(|d| d.seq);
        if self.queued <= self.window {
            return;
        }
        let mut queued = 0;
        let (window, unread) = (self.window, &mut self.unread);
        self.kept.retain(|d| {
            if d.state != DeliveryState::Queued {
                return true;
            }
            queued += 1;
            if queued <= window {
                return true;
            }
            Unread::add(unread, d.seq, d.message.message.payload.len(), d.message.id);
            false
        });
        self.queued = self.window;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mqtt_codec::{PacketId, QoS, TopicName};

    use super::*;
    use crate::message::Message;
    use crate::store::StoredMessage;

    fn delivery(seq: u64, state: DeliveryState) -> StoredDelivery {
        let topic = TopicName::new("t").unwrap_or_else(|_| unreachable!());
        let payload = bytes::Bytes::from_static(b"abc");
        StoredDelivery {
            seq,
            message: StoredMessage {
                id: 100 + seq,
                message: Arc::new(Message::new(topic, payload, QoS::AtLeastOnce, false, None)),
                expires_at: None,
            },
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: Vec::new(),
            state,
        }
    }

    fn in_flight() -> DeliveryState {
        DeliveryState::AwaitingPubAck(PacketId::new(1).unwrap_or_else(|| unreachable!()))
    }

    #[test]
    fn keeps_the_first_queued_by_sequence_number_whatever_the_order_read() {
        let mut w = Windowed::new(3);
        for seq in [9, 2, 7, 1, 8, 3, 10, 4, 6, 5] {
            w.offer(delivery(seq, DeliveryState::Queued));
        }
        let (kept, unread) = w.finish();
        let seqs: Vec<u64> = kept.iter().map(|d| d.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(
            unread,
            Some(Unread {
                first_seq: 4,
                last_seq: 10,
                count: 7,
                bytes: 21,
                max_message_id: 110,
            })
        );
    }

    #[test]
    fn deliveries_in_flight_are_kept_past_the_window() {
        let mut w = Windowed::new(1);
        w.offer(delivery(1, DeliveryState::Queued));
        w.offer(delivery(2, DeliveryState::Queued));
        w.offer(delivery(3, in_flight()));
        let (kept, unread) = w.finish();
        let seqs: Vec<u64> = kept.iter().map(|d| d.seq).collect();
        assert_eq!(seqs, [1, 3]);
        assert_eq!(unread.map(|u| (u.first_seq, u.count)), Some((2, 1)));
    }

    #[test]
    fn an_unbounded_window_keeps_everything() {
        let mut w = Windowed::new(usize::MAX);
        for seq in (1..=50).rev() {
            w.offer(delivery(seq, DeliveryState::Queued));
        }
        let (kept, unread) = w.finish();
        assert_eq!(kept.len(), 50);
        assert!(kept.windows(2).all(|p| p[0].seq < p[1].seq));
        assert_eq!(unread, None);
    }
}
