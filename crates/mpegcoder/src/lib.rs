//! mpegcoder: decode, encode, pace and publish video with its audio (passed through), and pull
//! both back.
#![forbid(unsafe_code)]

pub use mpegcoder_codec as codec;
pub use mpegcoder_pacer as pacer;
pub use mpegcoder_transport as transport;
pub use mpegcoder_types as types;

pub mod client;
mod continuity;
mod live;
pub mod priority;
pub mod push;
pub mod reconnect;
mod runtime;
pub mod server;
pub use client::{
    AsyncAudioReceiver, AsyncClient, AudioReceiver, Client, ClientCounters, ClientError,
    ClientOptions, ClientStatus, FrameReceiver, PullOptions, StreamAudio, StreamParams,
};
pub use mpegcoder_transport::TlsOptions;
pub use mpegcoder_types::Transport;
pub use push::{push, PushError, PushOptions, PushSummary};
pub use reconnect::ReconnectPolicy;
pub use server::{
    AsyncServer, AudioStream, DestinationState, DestinationStats, FrameRef, KeyFrameRequest,
    PacketStream, Server, ServerConfig, ServerError, ServerStats, VideoCodec, VideoSource,
};
