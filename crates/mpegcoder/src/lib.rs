//! mpegcoder: decode, encode, pace and publish video, and pull it back.
#![forbid(unsafe_code)]

pub use mpegcoder_codec as codec;
pub use mpegcoder_pacer as pacer;
pub use mpegcoder_transport as transport;

pub mod client;
pub mod priority;
pub mod push;
pub mod server;
pub use client::{
    Client, ClientCounters, ClientError, ClientOptions, ClientStatus, FrameReceiver, PullOptions,
    PullTransport, StreamParams,
};
pub use push::{push, PushError, PushOptions, PushSummary};
pub use server::{FrameRef, Server, ServerConfig, ServerError, ServerStats, Transport, VideoCodec};
