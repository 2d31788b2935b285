//! Frames a worker's UDP receive loop took off one burst, switched as one
//! batch per session: in arrival order, each run of one session's frames
//! together (one hub pass and one tap write per run, not per datagram).

use std::sync::Arc;

use ethergate_proto::data::Frames;

use crate::{directory::SessionShared, worker_context::Worker};

#[derive(Default)]
pub(crate) struct SessionBatch {
    session: Option<Arc<SessionShared>>,
    frames: Frames,
}

impl SessionBatch {
    /// One frame from `session`'s client.
    pub fn push(&mut self, session: &Arc<SessionShared>, frame: &[u8], worker: &Worker) {
        self.start(session, worker);
        self.frames.push(frame);
    }

    /// Several frames from `session`'s client.
    pub fn append(&mut self, session: &Arc<SessionShared>, frames: &Frames, worker: &Worker) {
        self.start(session, worker);
        self.frames.append(frames);
    }

    /// Switches what another session left pending, and makes `session`
    /// the one being gathered.
    fn start(&mut self, session: &Arc<SessionShared>, worker: &Worker) {
        if self
            .session
            .as_ref()
            .is_some_and(|s| !Arc::ptr_eq(s, session))
        {
            self.flush(worker);
        }
        if self.session.is_none() {
            self.session = Some(Arc::clone(session));
        }
    }

    /// Switches the pending run (the end of a burst).
    pub fn flush(&mut self, worker: &Worker) {
        let Some(session) = self.session.take() else {
            return;
        };
        if !self.frames.is_empty() {
            session.switch_from_client(&mut self.frames, worker);
        }
        self.frames.clear();
    }
}
