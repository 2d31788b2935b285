//! PACK wire codec (spec §2.1–§2.2; `ReadPack`/`WritePack` in Mayaqua/Pack.c).
//! Decoding is bounded by a [`PackLimits`] chosen by the caller — far below
//! SoftEther's own 64-bit limits (262144 elements, 384 MiB values, 512 MiB
//! PACK) — and rejects exactly what SoftEther rejects (zero-value elements,
//! zero-length names, case-insensitive duplicate names) plus anything it would
//! silently mangle (over-long names, unterminated UNISTR, trailing bytes).
//! Invariant: `Pack::decode(&p.to_bytes()?, ..) == Ok(p)` for every `Pack`
//! that encodes.

use super::{Element, Pack, PackError, ValueType, Values};
use ethergate_net::{Reader, Short};

/// SoftEther truncates element names to 63 characters (`MAX_ELEMENT_NAME_LEN`);
/// we reject longer ones instead, since no real peer sends them and silent
/// truncation could create duplicates behind our back.
pub const MAX_NAME_LEN: usize = 63;

/// Caps applied while decoding one PACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackLimits {
    /// Largest serialized PACK accepted.
    pub max_body: usize,
    /// Largest `num_elements`.
    pub max_elements: u32,
    /// Largest `num_values` of one element.
    pub max_values_per_element: u32,
    /// Largest sum of `num_values` over the PACK; bounds the allocation
    /// amplification of many tiny values.
    pub max_total_values: u32,
}

impl PackLimits {
    /// Handshake PACKs (hello, login, welcome, error, additional_connect),
    /// all exchanged **before authentication**.
    /// * `max_body` 65536: SoftEther's own server cap, `HTTP_PACK_MAX_SIZE`.
    /// * `max_elements` 256: the Debian client's login PACK has ~90 elements
    ///   (auth, version, UDP-accel offer, NODE_INFO, WinVer, §4.3) and the
    ///   real welcome ~80 (40 policies + session fields, §5).
    /// * `max_values_per_element` 64: handshake arrays are tiny (redirect
    ///   `Port[]`); everything else is a single value.
    /// * `max_total_values` 1024: 4x the element cap.
    pub const HANDSHAKE: PackLimits = PackLimits {
        max_body: 65_536,
        max_elements: 256,
        max_values_per_element: 64,
        max_total_values: 1024,
    };

    /// PACKs from an authenticated peer (e.g. admin RPC replies carrying
    /// enumerations as arrays). 16 MiB is still 32x below SoftEther's
    /// `MAX_PACK_SIZE`; nothing in ethergate's VPN path needs more.
    pub const AUTHENTICATED: PackLimits = PackLimits {
        max_body: 16 * 1024 * 1024,
        max_elements: 16_384,
        max_values_per_element: 65_536,
        max_total_values: 1 << 20,
    };
}

fn short(element: &str) -> impl Fn(Short) -> PackError + '_ {
    move |s| PackError::Truncated {
        part: s.field,
        element: element.to_owned(),
    }
}

fn check_name(name: &str) -> Result<(), PackError> {
    if name.is_empty() {
        return Err(PackError::EmptyName);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(PackError::NameTooLong {
            len: name.len(),
            max: MAX_NAME_LEN,
        });
    }
    if name.as_bytes().contains(&0) {
        return Err(PackError::InvalidName);
    }
    Ok(())
}

impl Pack {
    /// Decode one serialized PACK occupying all of `buf`.
    pub fn decode(buf: &[u8], limits: &PackLimits) -> Result<Pack, PackError> {
        if buf.len() > limits.max_body {
            return Err(PackError::BodyTooLarge {
                len: buf.len(),
                max: limits.max_body,
            });
        }
        let mut r = Reader::new(buf);
        let count = r.u32("num_elements").map_err(short(""))?;
        if count > limits.max_elements {
            return Err(PackError::TooManyElements {
                count,
                max: limits.max_elements,
            });
        }
        // Each element needs at least 4+1+4+4+4 bytes, so a lying count
        // cannot make us over-allocate.
        let mut elements = Vec::with_capacity((count as usize).min(r.left() / 17));
        let mut total_values: u32 = 0;
        for _ in 0..count {
            let e = decode_element(&mut r, limits, &mut total_values)?;
            elements.push(e);
        }
        if !r.is_empty() {
            return Err(PackError::TrailingBytes { count: r.left() });
        }
        // Duplicate check in O(n log n): names are ≤ 63 bytes, so each gets
        // a fixed-size lower-cased key that sorts with plain memcmp.
        let mut keys: Vec<([u8; MAX_NAME_LEN], usize)> = elements
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut k = [0u8; MAX_NAME_LEN];
                for (d, c) in k.iter_mut().zip(e.name.bytes()) {
                    *d = c.to_ascii_lowercase();
                }
                (k, i)
            })
            .collect();
        keys.sort_unstable_by_key(|k| k.0);
        for w in keys.windows(2) {
            // Names hold no NUL, so zero padding makes equal keys mean
            // equal names.
            if w[0].0 == w[1].0 {
                return Err(PackError::DuplicateName {
                    element: elements[w[1].1].name.clone(),
                });
            }
        }
        Ok(Pack { elements })
    }

    /// Append the wire form to `out`. Fails (writing nothing useful) if a
    /// name breaks the rules or an element is an empty array, since
    /// SoftEther would reject the whole PACK.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), PackError> {
        out.reserve(self.encoded_len());
        put_len(out, self.elements.len(), "")?;
        for e in &self.elements {
            check_name(&e.name)?;
            if e.values.is_empty() {
                return Err(PackError::EmptyElement {
                    element: e.name.clone(),
                });
            }
            // name_len_plus_1 then the name without NUL (`WriteBufStr`).
            put_len(out, e.name.len() + 1, &e.name)?;
            out.extend_from_slice(e.name.as_bytes());
            out.extend_from_slice(&(e.values.value_type() as u32).to_be_bytes());
            put_len(out, e.values.len(), &e.name)?;
            match &e.values {
                Values::Int(v) => v
                    .iter()
                    .for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
                Values::Int64(v) => v
                    .iter()
                    .for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
                Values::Data(v) | Values::Str(v) => {
                    for d in v {
                        put_len(out, d.len(), &e.name)?;
                        out.extend_from_slice(d);
                    }
                }
                Values::UniStr(v) => {
                    for s in v {
                        if s.as_bytes().contains(&0) {
                            return Err(PackError::BadUniStr {
                                element: e.name.clone(),
                            });
                        }
                        // size counts the trailing NUL (§2.1).
                        put_len(out, s.len() + 1, &e.name)?;
                        out.extend_from_slice(s.as_bytes());
                        out.push(0);
                    }
                }
            }
        }
        Ok(())
    }

    /// Exact size of [`Pack::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        let mut n = 4;
        for e in &self.elements {
            n += 12 + e.name.len();
            n += match &e.values {
                Values::Int(v) => 4 * v.len(),
                Values::Int64(v) => 8 * v.len(),
                Values::Data(v) | Values::Str(v) => v.iter().map(|d| 4 + d.len()).sum(),
                Values::UniStr(v) => v.iter().map(|s| 5 + s.len()).sum(),
            };
        }
        n
    }

    /// Convenience: encode into a fresh `Vec`.
    pub fn to_bytes(&self) -> Result<Vec<u8>, PackError> {
        let mut v = Vec::new();
        self.encode(&mut v)?;
        Ok(v)
    }
}

fn put_len(out: &mut Vec<u8>, len: usize, element: &str) -> Result<(), PackError> {
    let n = u32::try_from(len).map_err(|_| PackError::ValueTooLarge {
        element: element.to_owned(),
    })?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

fn decode_element(
    r: &mut Reader<'_>,
    limits: &PackLimits,
    total_values: &mut u32,
) -> Result<Element, PackError> {
    let name_field = r.u32("name length").map_err(short(""))?;
    if name_field == 0 {
        return Err(PackError::EmptyName);
    }
    let name_len = (name_field - 1) as usize;
    if name_len > MAX_NAME_LEN {
        return Err(PackError::NameTooLong {
            len: name_len,
            max: MAX_NAME_LEN,
        });
    }
    let raw = r.take(name_len, "name").map_err(short(""))?;
    let name = std::str::from_utf8(raw)
        .map_err(|_| PackError::InvalidName)?
        .to_owned();
    check_name(&name)?;

    let code = r.u32("type").map_err(short(&name))?;
    let ty = ValueType::from_code(code).ok_or_else(|| PackError::UnknownType {
        element: name.clone(),
        code,
    })?;
    let n = r.u32("num_values").map_err(short(&name))?;
    if n == 0 {
        return Err(PackError::EmptyElement { element: name });
    }
    if n > limits.max_values_per_element {
        return Err(PackError::TooManyValues {
            element: name,
            count: n,
            max: limits.max_values_per_element,
        });
    }
    *total_values = total_values.saturating_add(n);
    if *total_values > limits.max_total_values {
        return Err(PackError::TooManyTotalValues {
            max: limits.max_total_values,
        });
    }
    // Every value takes at least 4 wire bytes: bound the pre-allocation.
    let cap = (n as usize).min(r.left() / 4);
    let values = match ty {
        ValueType::Int => {
            let mut v = Vec::with_capacity(cap);
            for _ in 0..n {
                v.push(r.u32("INT value").map_err(short(&name))?);
            }
            Values::Int(v)
        }
        ValueType::Int64 => {
            let mut v = Vec::with_capacity(cap);
            for _ in 0..n {
                v.push(r.u64("INT64 value").map_err(short(&name))?);
            }
            Values::Int64(v)
        }
        ValueType::Data | ValueType::Str => {
            let mut v = Vec::with_capacity(cap);
            for _ in 0..n {
                let len = r.u32("value size").map_err(short(&name))? as usize;
                v.push(r.take(len, "value bytes").map_err(short(&name))?.to_vec());
            }
            if ty == ValueType::Data {
                Values::Data(v)
            } else {
                Values::Str(v)
            }
        }
        ValueType::UniStr => {
            let mut v = Vec::with_capacity(cap);
            for _ in 0..n {
                let size = r.u32("UNISTR size").map_err(short(&name))? as usize;
                let bytes = r.take(size, "UNISTR bytes").map_err(short(&name))?;
                // size includes the NUL; size 0 is undecodable in SoftEther
                // (`CalcUtf8ToUni` returns 0) and an inner NUL would be cut
                // there, so both are rejected.
                let body = match bytes.split_last() {
                    Some((0, body)) if !body.contains(&0) => body,
                    _ => return Err(PackError::BadUniStr { element: name }),
                };
                let s = std::str::from_utf8(body).map_err(|_| PackError::NotUtf8 {
                    element: name.clone(),
                })?;
                v.push(s.to_owned());
            }
            Values::UniStr(v)
        }
    };
    Ok(Element { name, values })
}
