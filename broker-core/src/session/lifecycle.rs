//! What a session keeps about its connections coming and going: its expiry and the timer
//! that ends it while its client is away, its connection as the operator sees it, and the
//! connections waiting to take it over.
//!
//! One lock for the four: none is touched per message, and four locks took 24 bytes more
//! in every session than one does.

use std::sync::Arc;

use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::{ClientRecord, SessionExpiry};

#[derive(Debug)]
pub(crate) struct Lifecycle {
    /// The session expiry of the last connection, used when it closes.
    pub(crate) expiry: SessionExpiry,
    /// The pending end of the session (expiry timer), if its client is away.
    pub(crate) expiry_task: Option<AbortHandle>,
    /// Its connection, current or last, as the operator sees it (`None` for a session
    /// restored from the store that no connection has attached to yet).
    pub(crate) client: Option<Box<ClientRecord>>,
    /// What the connections waiting to attach wait on (see `attach`): allocated by the
    /// first to wait, taken by the release that lets them try again.
    pub(crate) attach_waiters: Option<Arc<Notify>>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self {
            expiry: SessionExpiry::Immediately,
            expiry_task: None,
            client: None,
            attach_waiters: None,
        }
    }
}
