//! One actor per virtual hub: it owns the hub's switching state and its
//! local bridge, and is the only place frames change hands between
//! sessions (which live on any worker thread) and the bridge.
//!
//! Invariant: the actor processes its input channel in order, so a port is
//! always attached before its first frame and detached after its last; a
//! frame is never delivered to a port that has been detached.

use std::collections::HashMap;

use ethergate_proto::data::Frames;

/// A hub port: a session (ids from 1) or the local bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u64);

impl PortId {
    /// The hub's local bridge (its tap).
    pub const BRIDGE: PortId = PortId(0);
}

/// What workers send a hub.
pub enum HubInput {
    /// A session joined; frames for it go to `to_session`.
    Attach {
        port: PortId,
        to_session: async_channel::Sender<Frames>,
    },
    /// Frames a session sent into the hub.
    Frames { port: PortId, frames: Frames },
    /// The session's last connection closed.
    Detach { port: PortId },
}

/// Session ports as the actor knows them.
#[derive(Default)]
pub struct Ports {
    sessions: HashMap<PortId, async_channel::Sender<Frames>>,
}

impl Ports {
    pub fn attach(&mut self, port: PortId, to_session: async_channel::Sender<Frames>) {
        self.sessions.insert(port, to_session);
    }

    pub fn detach(&mut self, port: PortId) {
        self.sessions.remove(&port);
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Queues `frames` to a session; false when its queue is full or it is
    /// gone (the batch is dropped, as SoftEther drops, §7.1).
    pub fn send(&self, port: PortId, frames: Frames) -> bool {
        self.sessions
            .get(&port)
            .is_some_and(|tx| tx.try_send(frames).is_ok())
    }

    pub fn ids(&self) -> impl Iterator<Item = PortId> + '_ {
        self.sessions.keys().copied()
    }
}
