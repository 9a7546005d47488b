//! The protobuf codec of every generated service and client, set once in
//! `build.rs` (`codec_path`): a message that does not decode is the
//! caller's error, so it answers INVALID_ARGUMENT rather than tonic's
//! INTERNAL.

use tonic::Status;

use super::status::bounded;

/// The codec of every generated service and client: tonic's
/// [`tonic_prost::ProstCodec`], with one change. tonic answers a message
/// that does not decode (a string field that is not UTF-8, a wrong wire
/// type, a truncated field) with INTERNAL, which the status table keeps for
/// a broken invariant of ours; it is the caller's error, so this decoder
/// answers INVALID_ARGUMENT, with prost's description (the message and
/// field path, never the bytes). Set once, in `build.rs` (`codec_path`).
#[derive(Debug, Clone)]
pub struct ProtoCodec<T, U>(tonic_prost::ProstCodec<T, U>);

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        ProtoCodec(tonic_prost::ProstCodec::default())
    }
}

impl<T, U> tonic::codec::Codec for ProtoCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = ProtoDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProtoDecoder(self.0.decoder())
    }
}

/// The decoder of [`ProtoCodec`]: prost's, with a decode error answered as
/// INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct ProtoDecoder<U>(tonic_prost::ProstDecoder<U>);

impl<U: prost::Message + Default> tonic::codec::Decoder for ProtoDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // ProstDecoder fails only when prost cannot decode the bytes.
        self.0.decode(buf).map_err(|e| {
            Status::invalid_argument(bounded(format!(
                "the request is not a valid protobuf message: {}",
                e.message()
            )))
        })
    }

    fn buffer_settings(&self) -> tonic::codec::BufferSettings {
        self.0.buffer_settings()
    }
}
