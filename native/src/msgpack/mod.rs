//! MessagePack, written for npcd's wire protocol.
//!
//! [`encode`] produces the same bytes as the JS codec (msgpackr with
//! `useRecords: false, variableMapSize: true`), so either side can encode a
//! frame. [`decode`] reads untrusted client messages into a flat tape of
//! borrowed [`Item`]s under explicit [`Limits`].

pub mod decode;
pub mod encode;

pub use decode::{decode_into, decode_stream_into, value_end, DecodeError, ErrorKind, Item, Limits, TimestampError};
pub use encode::{
    write_array_header, write_bin, write_bin_header, write_bool, write_date, write_ext, write_f32, write_f64,
    write_i64, write_map_header, write_nil, write_number, write_str, write_str_header, write_timestamp, write_u64,
    write_undefined, MAX_LEN,
};

#[cfg(test)]
mod tests;
