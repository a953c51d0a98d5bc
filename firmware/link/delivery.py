# QoS 1 delivery of the meter's events, end to end: the one place that
# knows which events are on their way to the broker.
#
# - An outbox event goes out only once it is durable (seq <= durable_seq), so
#   a seq the server has seen is never reused after a cut.
# - At most WINDOW events wait for their PUBACK at a time.
# - The outbox marks an event sent (delivered) here, and only here: when the
#   broker has acknowledged it (Session.acked). An event handed to the socket
#   but not acknowledged stays unsent in the outbox: after a drop, a cut or a
#   full outbox it goes again (at least once; the head-end de-duplicates by seq).
# - Live events (the fault state's, which cannot be queued durably) are sent
#   once the link takes them, and not tracked further.
from micropython import const

from firmware.link import protocol as P

WINDOW = const(8)   # events awaiting their PUBACK at most


class EventDelivery:
    def __init__(self, session, outbox, topic, signer, meter_id, clock):
        self.session = session
        self.outbox = outbox
        self.topic = topic
        self.signer = signer
        self.meter_id = meter_id
        self.clock = clock
        self.inflight = {}          # seq -> packet id, handed to the socket, no PUBACK yet
        self.drops = session.drops  # the session's drop count when inflight was made

    def pump(self, durable_seq, live):
        """Note the PUBACKs that came in, then hand the socket the live
        events (a list, emptied as they go) and the outbox events that may
        leave. Never waits."""
        s = self.session
        inflight = self.inflight
        if s.drops != self.drops:
            # the connection dropped: no PUBACK will come for what was in
            # flight; those events are still unsent in the outbox, and go again
            self.drops = s.drops
            inflight.clear()
        if inflight:
            for seq in [q for q in inflight if s.acked(inflight[q])]:
                del inflight[seq]
                self.outbox.mark_sent(seq)
        while s.up and live:
            body = dict(live[0], v=1, meter=self.meter_id, t=self.clock.utc_s())
            if not s.publish(self.topic, P.sign(self.signer, body), False, 1):
                break
            live.pop(0)
        while s.up and len(inflight) < WINDOW:
            ev = self.outbox.peek(inflight)
            if not ev or ev[0] > durable_seq:
                break  # nothing to send, or not durable yet (the next commit makes it)
            pid = s.publish(self.topic, P.seal(self.signer, ev[1]), False, 1)
            if not pid:
                break
            inflight[ev[0]] = pid

    def waiting(self):
        """True while the link is up and an event waits to be handed out
        (durable or not yet): the publish task then comes back soon rather
        than at its idle pace, so an event leaves right after its commit."""
        return self.session.up and self.outbox.peek(self.inflight) is not None
