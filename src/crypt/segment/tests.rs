//! The sealed format through the real streaming sealer and opener: round trips at every
//! boundary, and every kind of tampering detected.

use std::ops::RangeInclusive;

use bytes::Bytes;
use futures::StreamExt;
use proptest::prelude::*;

use super::*;
use crate::crypt::stream::{AppendEnd, OpenError, Opener, Sealing, read_header, seal, seal_all};

const BLOB: &str = "tenant-acme/documents/0190f0c1a2b37c4d8e9f001122334455/report.pdf";

fn key(byte: u8) -> DataKey {
    DataKey { id: [byte; 16], secret: [byte.wrapping_add(7); 32] }
}

fn header(segment: u32, key: &DataKey) -> Header {
    Header { segment, ..Header::generate(key.id) }
}

fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Seals `data` (handed over in `chunk`-byte pieces) through the streaming sealer.
async fn sealed(data: &[u8], segment: u32, key: &DataKey, blob: &str, chunk: usize) -> Vec<u8> {
    let sealer = Sealer::new(key, header(segment, key), blob);
    let pieces: Vec<std::io::Result<Bytes>> =
        data.chunks(chunk.max(1)).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let mut out = Vec::new();
    let mut stream = seal(sealer, Box::pin(futures::stream::iter(pieces)));
    while let Some(piece) = stream.next().await {
        out.extend_from_slice(&piece.unwrap());
    }
    out
}

/// Opens `stored` (a sealed object's bytes) through the real file reader.
async fn opened(
    stored: &[u8],
    key: &DataKey,
    blob: &str,
    range: Option<RangeInclusive<u64>>,
) -> Result<(u64, Vec<u8>), OpenError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("object");
    std::fs::write(&path, stored).unwrap();
    let mut file = tokio::fs::File::open(&path).await.unwrap();
    let header = read_header(&mut file).await?.expect("sealed");
    let sealer = Sealer::new(key, header, blob);
    let (size, mut opener) = Opener::new(file, sealer, stored.len() as u64, range).await?;
    let mut out = Vec::new();
    while let Some(piece) = opener.next_piece().await? {
        out.extend_from_slice(&piece);
    }
    Ok((size, out))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn round_trips_at_every_boundary() {
    rt().block_on(async {
        let k = key(1);
        let s = SEGMENT as usize;
        for len in [0, 1, 16, s - 1, s, s + 1, 2 * s, 3 * s + 5] {
            let data = plaintext(len);
            let stored = sealed(&data, SEGMENT, &k, BLOB, 7000).await;
            let segments = len.div_ceil(s).max(1);
            assert_eq!(stored.len(), HEADER_LEN + len + segments * TAG_LEN, "len {len}");
            if len >= 64 {
                assert!(!stored.windows(64).any(|w| w == &data[..64]), "plaintext on disk");
            }
            let (size, whole) = opened(&stored, &k, BLOB, None).await.unwrap();
            assert_eq!((size, whole.as_slice()), (len as u64, data.as_slice()), "len {len}");
            if len == 0 {
                continue;
            }
            // Ranges at segment boundaries and inside segments.
            let last = len as u64 - 1;
            let mut points = vec![0, 1.min(last), last];
            for b in [s as u64 - 1, s as u64, s as u64 + 1, 2 * s as u64 - 1, 2 * s as u64] {
                if b <= last {
                    points.push(b);
                }
            }
            for &a in &points {
                for &b in &points {
                    if a <= b {
                        let (_, got) = opened(&stored, &k, BLOB, Some(a..=b)).await.unwrap();
                        assert_eq!(got, &data[a as usize..=b as usize], "len {len} range {a}..={b}");
                    }
                }
            }
        }
    });
}

/// The whole-buffer sealer (small uploads) writes byte for byte what the streaming one does,
/// for any body cut into any pieces.
#[test]
fn sealing_whole_equals_sealing_a_stream() {
    rt().block_on(async {
        let k = key(3);
        for segment in [1024u32, SEGMENT] {
            let s = segment as usize;
            for len in [0, 1, s - 1, s, s + 1, 2 * s, 3 * s + 5] {
                let data = plaintext(len);
                let h = header(segment, &k);
                let pieces: Vec<std::io::Result<Bytes>> =
                    data.chunks(700).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
                let mut streamed = Vec::new();
                let mut stream = seal(Sealer::new(&k, h.clone(), BLOB), Box::pin(futures::stream::iter(pieces)));
                while let Some(piece) = stream.next().await {
                    streamed.extend_from_slice(&piece.unwrap());
                }
                let whole = seal_all(&Sealer::new(&k, h, BLOB), &data);
                assert_eq!(whole, streamed, "segment {segment}, len {len}");
                let (size, back) = opened(&whole, &k, BLOB, None).await.unwrap();
                assert_eq!((size, back), (len as u64, data), "segment {segment}, len {len}");
            }
        }
    });
}

#[test]
fn every_tampering_is_detected() {
    rt().block_on(async {
        let k = key(2);
        let s = SEGMENT as usize;
        let data = plaintext(3 * s + 100);
        let stored = sealed(&data, SEGMENT, &k, BLOB, 65536).await;
        let seg = s + TAG_LEN;
        let fails = |r: Result<(u64, Vec<u8>), OpenError>| r.is_err() || r.unwrap().1 != data;

        // A flipped bit anywhere: header (past the magic), any segment's body or tag.
        for pos in [
            9,
            12,
            30,
            61,
            67,
            HEADER_LEN,
            HEADER_LEN + 5,
            HEADER_LEN + seg - 1,
            HEADER_LEN + seg + 3,
            stored.len() - 1,
        ] {
            let mut t = stored.clone();
            t[pos] ^= 0x01;
            let r = opened(&t, &k, BLOB, None).await;
            assert!(fails(r), "flip at {pos} went unnoticed");
        }
        // Truncated: the last segment dropped (ends on a non-final segment), or cut inside.
        for cut in [HEADER_LEN + 3 * seg, stored.len() - 1, HEADER_LEN + 2, HEADER_LEN] {
            let r = opened(&stored[..cut], &k, BLOB, None).await;
            assert!(r.is_err(), "truncation to {cut} went unnoticed");
        }
        // Appended bytes.
        let mut longer = stored.clone();
        longer.extend_from_slice(&[0u8; 40]);
        assert!(opened(&longer, &k, BLOB, None).await.is_err());
        // Two segments swapped.
        let mut swapped = stored.clone();
        let (a, b) = (HEADER_LEN, HEADER_LEN + seg);
        let first = stored[a..a + seg].to_vec();
        swapped[a..a + seg].copy_from_slice(&stored[b..b + seg]);
        swapped[b..b + seg].copy_from_slice(&first);
        assert!(opened(&swapped, &k, BLOB, None).await.is_err());
        // A segment (with the header it needs) moved from another object of the same tenant,
        // and the whole object presented as another object or under another tenant's key.
        let other =
            sealed(&data, SEGMENT, &k, "tenant-acme/documents/0190f0c1a2b37c4d8e9f001122334466/x.pdf", 65536).await;
        let mut spliced = stored.clone();
        spliced[HEADER_LEN + seg..HEADER_LEN + 2 * seg].copy_from_slice(&other[HEADER_LEN + seg..HEADER_LEN + 2 * seg]);
        assert!(opened(&spliced, &k, BLOB, None).await.is_err());
        let renamed = "tenant-acme/documents/0190f0c1a2b37c4d8e9f001122334455/other.pdf";
        assert!(opened(&stored, &k, renamed, None).await.is_err());
        let foreign = "tenant-evil/documents/0190f0c1a2b37c4d8e9f001122334455/report.pdf";
        assert!(opened(&stored, &k, foreign, None).await.is_err());
        assert!(opened(&stored, &key(3), BLOB, None).await.is_err());
        // A Range read detects tampering in the segments it touches.
        let mut t = stored.clone();
        t[HEADER_LEN + seg + 10] ^= 0x80;
        assert!(opened(&t, &k, BLOB, Some((s as u64 + 5)..=(s as u64 + 20))).await.is_err());
        assert_eq!(opened(&t, &k, BLOB, Some(0..=10)).await.unwrap().1, &data[..=10], "untouched segment still reads");
    });
}

#[test]
fn headers_that_are_not_ours_are_told_apart() {
    assert!(Header::decode(b"%PDF-1.7 plain").is_none());
    assert!(Header::decode(b"").is_none());
    let h = Header::generate([9; 16]);
    let bytes = h.encode();
    assert_eq!(Header::decode(&bytes).unwrap().unwrap(), h);
    assert_eq!(Header::decode(&bytes[..20]), Some(Err(SealError::Header)));
    let mut odd = bytes;
    odd[8..12].copy_from_slice(&3u32.to_be_bytes());
    assert_eq!(Header::decode(&odd), Some(Err(SealError::Header)));
    for stored in [0, HEADER_LEN as u64, HEADER_LEN as u64 + 15, HEADER_LEN as u64 + u64::from(SEGMENT) + 16 + 16] {
        assert!(h.plaintext_len(stored).is_err(), "{stored}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn any_range_of_any_object_round_trips(
        len in 0usize..6000,
        chunk in 1usize..3000,
        a in any::<u64>(),
        b in any::<u64>(),
    ) {
        let k = key(4);
        let data = plaintext(len);
        let (size, got, range) = rt().block_on(async {
            let stored = sealed(&data, 1024, &k, BLOB, chunk).await;
            let range = (len > 0).then(|| {
                let (x, y) = (a % len as u64, b % len as u64);
                x.min(y)..=x.max(y)
            });
            let (size, got) = opened(&stored, &k, BLOB, range.clone()).await.unwrap();
            (size, got, range)
        });
        prop_assert_eq!(size, len as u64);
        let want = match range {
            Some(r) => &data[*r.start() as usize..=*r.end() as usize],
            None => &data[..],
        };
        prop_assert_eq!(got.as_slice(), want);
    }

    /// A body sealed in appends (each resumed from the tail the one before left unsealed, as a
    /// resumable upload is) is byte for byte the body sealed whole, for any cuts into appends
    /// and into pieces: without its length known, the last tail is sealed as the last segment
    /// at the end; with it, an append ending at a segment's end leaves no tail and the one
    /// reaching the length seals the last segment itself.
    #[test]
    fn sealing_in_appends_equals_sealing_whole(
        len in 0usize..9000,
        cuts in proptest::collection::vec(any::<u16>(), 0..6),
        chunk in 1usize..2500,
        known in any::<bool>(),
        aligned in any::<bool>(),
    ) {
        let k = key(5);
        let data = plaintext(len);
        let h = header(1024, &k);
        // Cuts at segment ends too, where an append with the length known leaves no tail.
        let mut ends: Vec<usize> =
            cuts.iter().map(|&c| if aligned { usize::from(c) % 9 * 1024 } else { usize::from(c) }).map(|c| c % (len + 1)).collect();
        if known {
            // Nothing is appended once the length is reached.
            ends.retain(|&end| end < len);
        }
        ends.push(len);
        ends.sort_unstable();
        let length = known.then_some(len as u64);
        let (stored, lengths) = rt().block_on(async {
            let mut stored = h.encode().to_vec();
            let (mut tail, mut index, mut at, mut lengths) = (Vec::new(), 0u64, 0usize, Vec::new());
            let mut last = false;
            for end in ends {
                let pieces: Vec<std::io::Result<Bytes>> =
                    data[at..end].chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
                let body = Box::pin(futures::stream::iter(pieces));
                let mut sealing = Sealing::resume(Sealer::new(&k, h.clone(), BLOB), index, &tail, body, length);
                while let Some(piece) = sealing.next_piece().await {
                    let piece = piece.unwrap();
                    index += (piece.len() / (1024 + TAG_LEN)) as u64;
                    stored.extend_from_slice(&piece);
                }
                let (ended, taken) = sealing.into_end();
                tail = match ended {
                    AppendEnd::Tail(rest) => rest.to_vec(),
                    AppendEnd::Boundary => {
                        assert!(known && end % 1024 == 0 && end < len, "a boundary at {end} of {len}");
                        Vec::new()
                    }
                    AppendEnd::Last => {
                        assert!(known && end == len, "the last segment at {end} of {len}");
                        last = true;
                        Vec::new()
                    }
                };
                lengths.push((taken, end - at, tail.len()));
                at = end;
            }
            assert_eq!(last, known, "the append reaching a known length seals the last segment");
            if !last {
                let tag = Sealer::new(&k, h.clone(), BLOB).seal_detached(index, true, &mut tail);
                stored.extend_from_slice(&tail);
                stored.extend_from_slice(tag.as_ref());
            }
            (stored, lengths)
        });
        for (taken, sent, tail) in lengths {
            prop_assert_eq!(taken, sent as u64);
            prop_assert!(tail <= 1024, "a tail is at most a segment");
        }
        prop_assert_eq!(stored, seal_all(&Sealer::new(&k, h, BLOB), &data));
    }
}
