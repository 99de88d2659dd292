//! libx264 on a thread of its own, for the async server: encoding is CPU work that must not
//! run on a runtime thread. Frames go in through a channel; the packets come back through a
//! one-shot the caller awaits.

use std::sync::mpsc;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::codec::Rational;
use crate::codec::{CodecError, EncodedPacket, Encoder, EncoderConfig, Frame, PixelLayout};

use super::{FrameRef, ServerError};

/// A frame the encoder thread owns.
pub(super) enum OwnedFrame {
    Frame(Frame),
    Buffer(PixelLayout, Bytes),
}

impl OwnedFrame {
    pub(super) fn of(frame: FrameRef<'_>) -> OwnedFrame {
        match frame {
            // Frames share their pixel buffer: no copy.
            FrameRef::Frame(f) => OwnedFrame::Frame(f.clone()),
            FrameRef::Rgb24(d) => OwnedFrame::Buffer(PixelLayout::Rgb24, Bytes::copy_from_slice(d)),
            FrameRef::Yuv420p(d) => {
                OwnedFrame::Buffer(PixelLayout::Yuv420p, Bytes::copy_from_slice(d))
            }
        }
    }
}

/// What the encoder thread answers: the packets, and how many frames it has taken so far.
type Reply = Result<(Vec<EncodedPacket>, u64), CodecError>;

enum Job {
    /// A frame; true: make it an IDR picture.
    Encode(OwnedFrame, bool, oneshot::Sender<Reply>),
    Finish(oneshot::Sender<Reply>),
}

/// What the encoder said about the stream when it opened.
pub(super) struct Opened {
    pub(super) extradata: Bytes,
    pub(super) time_base: Rational,
    pub(super) encoder_config: EncoderConfig,
}

/// The handle of the encoder thread. Dropping it ends the thread.
pub(super) struct EncoderThread {
    jobs: mpsc::Sender<Job>,
    frames_in: u64,
}

impl EncoderThread {
    /// Starts the thread (at lowered priority, like the blocking server's encoder) and opens
    /// libx264 there.
    pub(super) async fn start(
        config: EncoderConfig,
    ) -> Result<(EncoderThread, Opened), ServerError> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (opened_tx, opened_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("mpegcoder-encoder".into())
            .spawn(move || {
                crate::priority::lower_current_thread();
                let mut encoder = match Encoder::new(config) {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                let opened = Opened {
                    extradata: encoder.extradata().clone(),
                    time_base: encoder.time_base(),
                    encoder_config: encoder.config().clone(),
                };
                if opened_tx.send(Ok(opened)).is_err() {
                    return;
                }
                while let Ok(job) = rx.recv() {
                    match job {
                        Job::Encode(frame, key, reply) => {
                            if key {
                                encoder.force_key_frame();
                            }
                            let out = match frame {
                                OwnedFrame::Frame(f) => encoder.encode(&f),
                                OwnedFrame::Buffer(layout, data) => {
                                    encoder.encode_buffer(layout, &data, None)
                                }
                            };
                            let _ = reply.send(out.map(|p| (p, encoder.frames_in())));
                        }
                        Job::Finish(reply) => {
                            let out = encoder.finish();
                            let _ = reply.send(out.map(|p| (p, encoder.frames_in())));
                        }
                    }
                }
            })
            .map_err(|e| ServerError::Runtime {
                what: "encoder thread",
                source: Arc::new(e),
            })?;
        match opened_rx.await {
            Ok(Ok(opened)) => Ok((EncoderThread { jobs, frames_in: 0 }, opened)),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(gone()),
        }
    }

    /// Frames the encoder has taken.
    pub(super) fn frames_in(&self) -> u64 {
        self.frames_in
    }

    /// Encodes one frame on the encoder thread; `key`: as an IDR picture.
    pub(super) async fn encode(
        &mut self,
        frame: OwnedFrame,
        key: bool,
    ) -> Result<Vec<EncodedPacket>, ServerError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Job::Encode(frame, key, tx))
            .map_err(|_| gone())?;
        self.reply(rx).await
    }

    /// Flushes the frames the encoder still holds.
    pub(super) async fn finish(&mut self) -> Result<Vec<EncodedPacket>, ServerError> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send(Job::Finish(tx)).map_err(|_| gone())?;
        self.reply(rx).await
    }

    async fn reply(
        &mut self,
        rx: oneshot::Receiver<Reply>,
    ) -> Result<Vec<EncodedPacket>, ServerError> {
        let (packets, frames_in) = rx.await.map_err(|_| gone())??;
        self.frames_in = frames_in;
        Ok(packets)
    }
}

fn gone() -> ServerError {
    ServerError::Runtime {
        what: "encoder thread",
        source: Arc::new(std::io::Error::other("the encoder thread ended")),
    }
}
