//! The one channel shape of Lethe's byte pipelines: a producer sends
//! [`Frame::Data`] pieces, then [`Frame::End`].
//!
//! The rule that makes "all or nothing" cheap: a stream is complete only
//! when `End` arrives. A producer that stops early (an error, a panic, a
//! drop) closes the channel without `End`, and the consumer abandons what it
//! was building: an upload fails instead of committing a truncated object,
//! a destination rolls the table back. Every stage (snapshot pumps to
//! object writers, object writers to uploads, the restore filter to its
//! destination) uses this type and this depth.

use bytes::Bytes;
use tokio::sync::mpsc;

/// Pieces in flight between two stages: enough to keep both busy, small
/// enough that memory stays bounded by `DEPTH` × the piece size.
pub const DEPTH: usize = 4;

/// What travels between two stages. See the module documentation for the
/// `End` rule.
#[derive(Debug)]
pub enum Frame {
    Data(Bytes),
    End,
}

/// A bounded channel of `T` (a [`Frame`], or a `Result` of one) with
/// [`DEPTH`] slots.
pub fn channel<T>() -> (mpsc::Sender<T>, mpsc::Receiver<T>) {
    mpsc::channel(DEPTH)
}
